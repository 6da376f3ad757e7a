//! Many messages from one template: children of one task with the same
//! options differ only in their id, group index and arguments, so those
//! are swapped into the template in turn and the rest is read, never
//! copied, per message.

use super::envelope::write_envelope;
use super::envelope_template::{ClockHoles, EnvelopeTemplate};
use super::json::write_value;
use super::message::{check_arguments, write_body, ReprLimits, TaskMessage};
use super::saferepr::saferepr;
use super::text::Text;
use super::value::{Unsupported, Value};
use crate::ids::{uuid4_batch, RandomnessError};

/// What a message that is alike a template differs in: Celery resolves
/// every other field the same way for children of one task with the same
/// options (`args` and `kwargs` as `TaskMessage`'s). A chain member's
/// first task also carries the rest of its chain (`chain`, the body's
/// field), its own ids in it; a child whose options read the clock
/// (countdown, eta, expires) its own clock fields; `None` keeps the
/// template's.
#[derive(Debug, Clone, PartialEq)]
pub struct AlikeItem {
    pub id: Text,
    pub group_index: Value,
    pub args: Value,
    pub kwargs: Value,
    pub chain: Option<Value>,
    pub clock: Option<Clock>,
}

/// The fields Celery computes from a fresh `now` per message, as
/// `TaskMessage` holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct Clock {
    pub eta: Value,
    pub expires: Value,
    pub expiration: Option<Text>,
}

/// `build_envelopes` for messages equal to `template` but for each item's
/// fields: they are swapped into the template in turn, so the template is
/// read, never copied, per message. An item already found unsupported
/// keeps its reason.
pub fn build_alike_envelopes(
    template: &mut TaskMessage,
    items: Vec<Result<AlikeItem, Unsupported>>,
    limits: &ReprLimits,
) -> Result<Vec<Result<Vec<u8>, Unsupported>>, RandomnessError> {
    let mut built = Vec::with_capacity(items.len());
    for_each_alike_envelope(template, items, limits, |r| {
        built.push(r.map(<[u8]>::to_vec))
    })?;
    Ok(built)
}

/// The alike envelopes in order, each handed to `sink` from one reused
/// buffer (no allocation per message when the sink keeps no copy).
pub fn for_each_alike_envelope(
    template: &mut TaskMessage,
    items: Vec<Result<AlikeItem, Unsupported>>,
    limits: &ReprLimits,
    mut sink: impl FnMut(Result<&[u8], Unsupported>),
) -> Result<(), RandomnessError> {
    // One more id than messages: the last is the placeholders' nonce.
    let mut tags = uuid4_batch(items.len() + 1)?;
    let nonce = tags.pop().expect("one id was added");
    let holed = EnvelopeTemplate::new(template, limits, &nonce, clock_holes(template, &items));
    let mut out = Vec::with_capacity(2048);
    let mut scratch = Vec::with_capacity(256);
    for (item, tag) in items.into_iter().zip(&tags) {
        let mut item = match item {
            Ok(item) => item,
            Err(e) => {
                sink(Err(e));
                continue;
            }
        };
        out.clear();
        swap_in(template, &mut item);
        let written = match &holed {
            Some(holed) => holed.write(&mut out, template, limits, tag, &mut scratch),
            None => write_envelope(&mut out, template, limits, tag),
        };
        swap_in(template, &mut item);
        sink(written.map(|()| out.as_slice()));
    }
    Ok(())
}

/// Whether the items' clock fields can be holes in the template's
/// envelope: every item with a clock has an expiration exactly where the
/// template has one (the property is there or not, not only its value).
/// None when no item has a clock; otherwise whether the holes fit.
fn clock_holes(template: &TaskMessage, items: &[Result<AlikeItem, Unsupported>]) -> ClockHoles {
    let mut clocks = items
        .iter()
        .filter_map(|item| item.as_ref().ok()?.clock.as_ref())
        .peekable();
    if clocks.peek().is_none() {
        return ClockHoles::None;
    }
    let expiration = template.expiration.is_some();
    if clocks.all(|clock| clock.expiration.is_some() == expiration) {
        ClockHoles::Fit
    } else {
        ClockHoles::Misfit
    }
}

/// Whether each alike item's envelope would be written, as
/// `for_each_alike_envelope` would find, without writing what the items
/// share: the first item that writes is written whole (the template's
/// headers and properties with it), the others only where they differ
/// (their arguments, in the body, and their group index; their reprs and
/// ids always write).
pub fn check_alike(
    template: &mut TaskMessage,
    items: Vec<Result<AlikeItem, Unsupported>>,
    limits: &ReprLimits,
) -> Vec<Result<(), Unsupported>> {
    let mut template_written = false;
    let mut out = Vec::with_capacity(items.len());
    let mut buf = Vec::with_capacity(2048);
    for item in items {
        let mut item = match item {
            Ok(item) => item,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        buf.clear();
        swap_in(template, &mut item);
        let written = if template_written {
            check_arguments(template)
                .and_then(|()| write_body(&mut buf, template))
                .and_then(|()| write_value(&mut buf, &template.group_index))
        } else {
            let whole = write_envelope(&mut buf, template, limits, NO_TAG);
            template_written = whole.is_ok();
            whole
        };
        swap_in(template, &mut item);
        out.push(written);
    }
    out
}

/// A delivery tag's place when an envelope is only checked.
const NO_TAG: &str = "00000000-0000-0000-0000-000000000000";

/// What an AMQP message of Celery's takes from an alike item besides its
/// ids: the body, and the `argsrepr`/`kwargsrepr` headers when Celery
/// computes them (`None` when the template sets them explicitly).
pub struct AmqpParts<'a> {
    pub body: &'a [u8],
    pub argsrepr: Option<Text>,
    pub kwargsrepr: Option<Text>,
}

/// The AMQP parts of each alike item in order, handed to `sink` (the body
/// from one reused buffer).
pub fn for_each_alike_amqp_parts(
    template: &mut TaskMessage,
    items: Vec<Result<AlikeItem, Unsupported>>,
    limits: &ReprLimits,
    mut sink: impl FnMut(Result<AmqpParts<'_>, Unsupported>),
) {
    let mut body = Vec::with_capacity(512);
    for item in items {
        let mut item = match item {
            Ok(item) => item,
            Err(e) => {
                sink(Err(e));
                continue;
            }
        };
        body.clear();
        swap_in(template, &mut item);
        let written = amqp_parts(&mut body, template, limits);
        swap_in(template, &mut item);
        sink(written.map(|(argsrepr, kwargsrepr)| AmqpParts {
            body: &body,
            argsrepr,
            kwargsrepr,
        }));
    }
}

type Reprs = (Option<Text>, Option<Text>);

fn amqp_parts(
    body: &mut Vec<u8>,
    m: &TaskMessage,
    limits: &ReprLimits,
) -> Result<Reprs, Unsupported> {
    check_arguments(m)?;
    write_body(body, m)?;
    let argsrepr = m
        .argsrepr
        .is_none()
        .then(|| saferepr(&m.args, limits.argsrepr_maxsize, limits.maxlevels));
    let kwargsrepr = m
        .kwargsrepr
        .is_none()
        .then(|| saferepr(&m.kwargs, limits.kwargsrepr_maxsize, limits.maxlevels));
    Ok((argsrepr, kwargsrepr))
}

fn swap_in(m: &mut TaskMessage, item: &mut AlikeItem) {
    std::mem::swap(&mut m.id, &mut item.id);
    std::mem::swap(&mut m.group_index, &mut item.group_index);
    std::mem::swap(&mut m.args, &mut item.args);
    std::mem::swap(&mut m.kwargs, &mut item.kwargs);
    if let Some(chain) = &mut item.chain {
        std::mem::swap(&mut m.chain, chain);
    }
    if let Some(clock) = &mut item.clock {
        std::mem::swap(&mut m.eta, &mut clock.eta);
        std::mem::swap(&mut m.expires, &mut clock.expires);
        std::mem::swap(&mut m.expiration, &mut clock.expiration);
    }
}
