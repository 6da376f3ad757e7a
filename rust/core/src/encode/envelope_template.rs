//! An alike run's envelope written once, with holes where its messages
//! differ.
//!
//! Alike messages share every header and property but a few fields: the
//! task id (in `id`, in `correlation_id`, and in `root_id` when the
//! template has none), the group index, the reprs of the arguments when
//! Celery computes them, and the delivery tag; the body differs whole.
//! [`EnvelopeTemplate::new`] writes the template's envelope once with a
//! placeholder in each of those fields and keeps the bytes between them;
//! each message is then its body, those pieces, and its own fields written
//! into the holes by the same functions `write_envelope` uses, so the
//! bytes are the ones `write_envelope` writes. Messages with clock fields
//! of their own (eta, expires, expiration) have holes there too.

use super::envelope::{write_encoded_body, write_envelope, write_extra, BODY_PREFIX};
use super::json::{write_rust_str, write_str, write_value};
use super::message::{ReprLimits, TaskMessage};
use super::saferepr::saferepr;
use super::text::Text;
use super::value::{Unsupported, Value};

/// A field each alike message writes for itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hole {
    Id,
    GroupIndex,
    ArgsRepr,
    KwargsRepr,
    DeliveryTag,
    Eta,
    Expires,
    Expiration,
    /// The headers a message adds after the template's (each written as
    /// `write_headers` appends one).
    Headers,
}

/// Whether an alike run's messages have clock fields of their own: none
/// do, or they do and fit holes, or they do and do not (an expiration
/// property present in some and not in others: each is written whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockHoles {
    None,
    Fit,
    Misfit,
}

/// The bytes of a template's envelope after its body, cut at its holes.
#[derive(Debug)]
pub struct EnvelopeTemplate {
    /// Each piece of literal bytes, then the hole after it (none after the
    /// last).
    pieces: Vec<(Vec<u8>, Option<Hole>)>,
    /// How many extra headers the template has: a message's own follow.
    template_headers: usize,
}

/// What `template` holds in the holed fields while it is written.
struct Saved {
    id: Text,
    group_index: Value,
    argsrepr: Option<Option<Value>>,
    kwargsrepr: Option<Option<Value>>,
    clock: Option<(Value, Value, Option<Text>)>,
}

impl EnvelopeTemplate {
    /// The template's envelope, cut at its holes. `nonce` makes the
    /// placeholders unique (a fresh random id): no value of the template
    /// can contain them. None when the template's envelope does not write
    /// (each message is then written whole, and finds its own error).
    /// With `headed`, the end of the headers is a hole too, for messages
    /// that add headers of their own.
    pub fn new(
        template: &mut TaskMessage,
        limits: &ReprLimits,
        nonce: &str,
        clock: ClockHoles,
        headed: bool,
    ) -> Option<Self> {
        if clock == ClockHoles::Misfit {
            return None;
        }
        let prefix = format!("tg-hole-{nonce}-");
        let placeholder = |hole: Hole| format!("{prefix}{hole:?}");
        let saved = Saved {
            id: std::mem::replace(&mut template.id, Text::from(placeholder(Hole::Id))),
            group_index: std::mem::replace(
                &mut template.group_index,
                Value::str(&placeholder(Hole::GroupIndex)),
            ),
            // Reprs the template sets explicitly are the same in every
            // message: only computed ones are holes.
            argsrepr: template.argsrepr.is_none().then(|| {
                template
                    .argsrepr
                    .replace(Value::str(&placeholder(Hole::ArgsRepr)))
            }),
            kwargsrepr: template.kwargsrepr.is_none().then(|| {
                template
                    .kwargsrepr
                    .replace(Value::str(&placeholder(Hole::KwargsRepr)))
            }),
            clock: (clock == ClockHoles::Fit).then(|| {
                let expiration = template
                    .expiration
                    .as_ref()
                    .map(|_| placeholder(Hole::Expiration));
                (
                    std::mem::replace(&mut template.eta, Value::str(&placeholder(Hole::Eta))),
                    std::mem::replace(
                        &mut template.expires,
                        Value::str(&placeholder(Hole::Expires)),
                    ),
                    std::mem::replace(&mut template.expiration, expiration.map(Text::from)),
                )
            }),
        };
        let template_headers = template.extra_headers.len();
        if headed {
            // Written last in the headers: where a message's own go.
            let key = Value::str(&placeholder(Hole::Headers));
            template.extra_headers.push((key, Value::None));
        }
        let mut out = Vec::with_capacity(2048);
        let written = write_envelope(&mut out, template, limits, &placeholder(Hole::DeliveryTag));
        template.extra_headers.truncate(template_headers);
        template.id = saved.id;
        template.group_index = saved.group_index;
        if let Some(argsrepr) = saved.argsrepr {
            template.argsrepr = argsrepr;
        }
        if let Some(kwargsrepr) = saved.kwargsrepr {
            template.kwargsrepr = kwargsrepr;
        }
        if let Some((eta, expires, expiration)) = saved.clock {
            template.eta = eta;
            template.expires = expires;
            template.expiration = expiration;
        }
        written.ok()?;
        // base64 holds no quote: the body ends at the first one.
        let body_end =
            BODY_PREFIX.len() + out[BODY_PREFIX.len()..].iter().position(|&b| b == b'"')?;
        let holes = [
            Hole::Id,
            Hole::GroupIndex,
            Hole::ArgsRepr,
            Hole::KwargsRepr,
            Hole::DeliveryTag,
            Hole::Eta,
            Hole::Expires,
            Hole::Expiration,
            Hole::Headers,
        ];
        // Every placeholder is written as a JSON string: cut it with its
        // quotes; the headers' is a whole `, "key": null` entry.
        let quoted: Vec<(Hole, Vec<u8>)> = holes
            .iter()
            .map(|&hole| match hole {
                Hole::Headers => (hole, format!(", \"{}\": null", placeholder(hole))),
                _ => (hole, format!("\"{}\"", placeholder(hole))),
            })
            .map(|(hole, quoted)| (hole, quoted.into_bytes()))
            .collect();
        Some(EnvelopeTemplate {
            pieces: cut(&out[body_end..], format!("\"{prefix}").as_bytes(), &quoted),
            template_headers,
        })
    }

    /// Append the envelope of `m` (the template with one message's fields
    /// swapped in), as `write_envelope(out, m, limits, delivery_tag)`
    /// would; `scratch` holds the body's JSON meanwhile.
    pub fn write(
        &self,
        out: &mut Vec<u8>,
        m: &TaskMessage,
        limits: &ReprLimits,
        delivery_tag: &str,
        scratch: &mut Vec<u8>,
    ) -> Result<(), Unsupported> {
        write_encoded_body(out, m, scratch)?;
        for (literal, hole) in &self.pieces {
            out.extend_from_slice(literal);
            match hole {
                None => {}
                Some(Hole::Id) => write_str(out, &m.id),
                Some(Hole::GroupIndex) => write_value(out, &m.group_index)?,
                Some(Hole::ArgsRepr) => write_str(
                    out,
                    &saferepr(&m.args, limits.argsrepr_maxsize, limits.maxlevels),
                ),
                Some(Hole::KwargsRepr) => write_str(
                    out,
                    &saferepr(&m.kwargs, limits.kwargsrepr_maxsize, limits.maxlevels),
                ),
                Some(Hole::DeliveryTag) => write_rust_str(out, delivery_tag),
                Some(Hole::Eta) => write_value(out, &m.eta)?,
                Some(Hole::Expires) => write_value(out, &m.expires)?,
                Some(Hole::Headers) => {
                    for pair in &m.extra_headers[self.template_headers..] {
                        write_extra(out, pair)?;
                    }
                }
                Some(Hole::Expiration) => match &m.expiration {
                    Some(expiration) => write_str(out, expiration),
                    None => return Err(Unsupported("an expiration where the run has none".into())),
                },
            }
        }
        Ok(())
    }
}

/// `bytes` as literal pieces, each followed by the hole whose quoted
/// placeholder came next. Every placeholder contains `prefix`: only where
/// it occurs are the placeholders compared (comparing them at every byte
/// cost ~15 µs a template, most of a small group's encoding).
fn cut(bytes: &[u8], prefix: &[u8], quoted: &[(Hole, Vec<u8>)]) -> Vec<(Vec<u8>, Option<Hole>)> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let finder = memchr::memmem::Finder::new(prefix);
    // Where each placeholder has the prefix: what comes before it is cut too.
    let leads: Vec<usize> = quoted
        .iter()
        .map(|(_, placeholder)| finder.find(placeholder).unwrap_or(0))
        .collect();
    let mut at = 0;
    while let Some(found) = finder.find(&bytes[at..]) {
        at += found;
        let hole = quoted.iter().zip(&leads).find(|((_, placeholder), &lead)| {
            at >= start + lead && bytes[at - lead..].starts_with(placeholder)
        });
        match hole {
            Some(((hole, placeholder), lead)) => {
                pieces.push((bytes[start..at - lead].to_vec(), Some(*hole)));
                at += placeholder.len() - lead;
                start = at;
            }
            None => at += 1,
        }
    }
    pieces.push((bytes[start..].to_vec(), None));
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_splits_at_each_placeholder_and_keeps_near_misses_literal() {
        let quoted = vec![
            (Hole::Id, b"\"tg-hole-n-Id\"".to_vec()),
            (Hole::GroupIndex, b"\"tg-hole-n-GroupIndex\"".to_vec()),
        ];
        let bytes =
            b"{\"id\": \"tg-hole-n-Id\"\"tg-hole-n-GroupIndex\", \"x\": \"tg-hole-n-Other\"}";
        let pieces = cut(bytes, b"\"tg-hole-n-", &quoted);
        assert_eq!(
            pieces,
            vec![
                (b"{\"id\": ".to_vec(), Some(Hole::Id)),
                (vec![], Some(Hole::GroupIndex)),
                (b", \"x\": \"tg-hole-n-Other\"}".to_vec(), None),
            ]
        );
    }

    #[test]
    fn cut_takes_what_a_placeholder_has_before_its_prefix() {
        let quoted = vec![(Hole::Headers, b", \"tg-hole-n-Headers\": null".to_vec())];
        let bytes = b"{\"a\": 1, \"tg-hole-n-Headers\": null}";
        let pieces = cut(bytes, b"\"tg-hole-n-", &quoted);
        assert_eq!(
            pieces,
            vec![
                (b"{\"a\": 1".to_vec(), Some(Hole::Headers)),
                (b"}".to_vec(), None),
            ]
        );
    }

    #[test]
    fn cut_without_placeholders_is_one_literal_piece() {
        let pieces = cut(b"no holes", b"\"tg-hole-n-", &[]);
        assert_eq!(pieces, vec![(b"no holes".to_vec(), None)]);
    }
}
