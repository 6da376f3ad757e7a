//! Many messages from one template: children of one task with the same
//! options differ only in their id, group index and arguments, so those
//! are swapped into the template in turn and the rest is read, never
//! copied, per message.

use super::envelope::{only_appends, write_envelope, write_extra};
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
/// template's. A message a publish signal receiver added headers to (a
/// tracer's trace context) has them in `headers`, put after the
/// template's extra headers as a dict update puts them (their keys are
/// str: other keys equal as Python compares them, not as `Value`s do).
#[derive(Debug, Clone, PartialEq)]
pub struct AlikeItem {
    pub id: Text,
    pub group_index: Value,
    pub args: Value,
    pub kwargs: Value,
    pub chain: Option<Value>,
    pub clock: Option<Clock>,
    pub headers: Option<Vec<(Value, Value)>>,
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
    let headed = items
        .iter()
        .any(|item| matches!(item, Ok(i) if i.headers.is_some()));
    let clock = clock_holes(template, &items);
    let holed = EnvelopeTemplate::new(template, limits, &nonce, clock, headed);
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
        // Headers that would replace others in place are written whole.
        let fits = item
            .headers
            .as_ref()
            .is_none_or(|own| only_appends(&template.extra_headers, own));
        merge_headers(template, &mut item);
        swap_in(template, &mut item);
        let written = match &holed {
            Some(holed) if fits => holed.write(&mut out, template, limits, tag, &mut scratch),
            _ => write_envelope(&mut out, template, limits, tag),
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
        // The item's own headers, before the merge puts some of them in
        // the template's places.
        let own_written = item
            .headers
            .iter()
            .flatten()
            .try_for_each(|pair| write_extra(&mut buf, pair));
        merge_headers(template, &mut item);
        swap_in(template, &mut item);
        let written = if template_written {
            own_written
                .and_then(|()| check_arguments(template))
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
        if item.headers.is_some() {
            // An AMQP message's headers are laid out by its caller.
            sink(Err(Unsupported("headers of its own".into())));
            continue;
        }
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

/// An item's own headers as the message's whole extra headers: the
/// template's updated with the item's, as `dict.update` updates them (an
/// equal key's value replaced in place, others appended), so that
/// `swap_in` swaps them in whole.
fn merge_headers(template: &TaskMessage, item: &mut AlikeItem) {
    if let Some(own) = &mut item.headers {
        let mut merged = template.extra_headers.clone();
        for (key, value) in own.drain(..) {
            match merged.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => merged.push((key, value)),
            }
        }
        *own = merged;
    }
}

/// Swaps an item's fields with the template's: called again, swaps them
/// back (the item's headers then hold the template's, not its own).
fn swap_in(m: &mut TaskMessage, item: &mut AlikeItem) {
    if let Some(headers) = &mut item.headers {
        std::mem::swap(&mut m.extra_headers, headers);
    }
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
