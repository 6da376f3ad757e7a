//! `turbogroup._core`: the thin pyo3 binding over `turbogroup-core`.
//! It only converts; the logic and its tests live in `rust/core`.

use pyo3::prelude::*;

mod alike_queue;
mod barrier;
mod convert;
mod decode;
mod encode;
mod errors;
mod gil;
mod ids;
mod read;
mod settle;
mod stand_ins;
mod unroll;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(ids::uuid4, m)?)?;
    m.add_function(wrap_pyfunction!(ids::uuid4_batch, m)?)?;
    m.add_class::<ids::TaskIds>()?;
    m.add_function(wrap_pyfunction!(unroll::freeze_unroll_order, m)?)?;
    m.add("LEAF", turbogroup_core::unroll::LEAF)?;
    let standard = turbogroup_core::encode::envelope::STANDARD_HEADERS;
    m.add(
        "STANDARD_HEADERS",
        pyo3::types::PyTuple::new(m.py(), standard)?,
    )?;
    m.add_class::<barrier::Barrier>()?;
    m.add_class::<errors::PyUnsupported>()?;
    m.add_class::<settle::QuickFulfilment>()?;
    m.add_class::<alike_queue::AlikeQueue>()?;
    m.add_function(wrap_pyfunction!(decode::decode_json_payloads, m)?)?;
    m.add_function(wrap_pyfunction!(stand_ins::settle_stand_ins, m)?)?;
    m.add_function(wrap_pyfunction!(stand_ins::undecided_payloads, m)?)?;
    m.add_function(wrap_pyfunction!(stand_ins::keep_plain_successes, m)?)?;
    m.add_function(wrap_pyfunction!(encode::encode_task_messages, m)?)?;
    m.add_function(wrap_pyfunction!(encode::encode_alike_messages, m)?)?;
    m.add_function(wrap_pyfunction!(encode::amqp_alike_parts, m)?)?;
    m.add_function(wrap_pyfunction!(encode::lpush_alike_command, m)?)?;
    m.add_function(wrap_pyfunction!(encode::lpush_command, m)?)?;
    m.add_function(wrap_pyfunction!(encode::mget_commands, m)?)?;
    m.add_function(wrap_pyfunction!(encode::task_reprs, m)?)?;
    Ok(())
}
