//! The Redis envelope and alike messages, byte for byte against messages
//! Celery 5.7.0 published.

use turbogroup_core::encode::alike::{build_alike_envelopes, check_alike, AlikeItem, Clock};
use turbogroup_core::encode::envelope::{build_envelopes, write_envelope};
use turbogroup_core::encode::message::{ReprLimits, TaskMessage};
use turbogroup_core::encode::{TagKind, Text, Unsupported, Value};

fn s(x: &str) -> Value {
    Value::str(x)
}

fn envelope(m: &TaskMessage, tag: &str) -> String {
    let mut out = Vec::new();
    write_envelope(&mut out, m, &ReprLimits::default(), tag).unwrap();
    String::from_utf8(out).unwrap()
}

/// The message Celery 5.7.0 LPUSHed (read back from Redis) for
/// `add.apply_async((1, 'a\tb', b'\xff', 2.5, None, True, (1,), {1: 2}),
/// {'k': datetime(2020, 1, 1)}, priority=5, foo='bar', headers={'h1': 1},
/// link=add.s(1), expires=datetime(2030, 1, 1), stamped_headers=['s1'],
/// s1='v')`.
fn captured_message() -> (TaskMessage, &'static str, &'static str) {
    let id = "dacd3452-bcce-4a82-8474-375b5a3b4f63";
    let args = Value::Tuple(vec![
        Value::Int(1),
        s("a\tb"),
        Value::Bytes(vec![0xff]),
        Value::Float(2.5),
        Value::None,
        Value::Bool(true),
        Value::Tuple(vec![Value::Int(1)]),
        Value::Dict(vec![(Value::Int(1), Value::Int(2))]),
    ]);
    let kwargs = Value::Dict(vec![(
        s("k"),
        Value::Tagged {
            kind: TagKind::DateTime,
            encoded: Text::from("2020-01-01T00:00:00"),
            repr: Text::from("datetime.datetime(2020, 1, 1, 0, 0)"),
        },
    )]);
    let mut m = TaskMessage::new(id, "x.add", args, kwargs);
    m.expires = s("2030-01-01T00:00:00");
    m.origin = s("gen10151@vm");
    m.stamped_headers = Value::List(vec![s("s1")]);
    m.stamps = Value::Dict(vec![(s("s1"), s("v"))]);
    m.extra_headers = vec![(s("h1"), Value::Int(1))];
    m.callbacks = Value::List(vec![Value::Dict(vec![
        (s("task"), s("x.add")),
        (s("args"), Value::List(vec![Value::Int(1)])),
        (s("kwargs"), Value::Dict(vec![])),
        (s("options"), Value::Dict(vec![])),
        (s("subtask_type"), Value::None),
        (s("immutable"), Value::Bool(false)),
    ])]);
    m.reply_to = s("8ca5c2bd-f5ee-34cd-80e9-efcbccc36ace");
    m.extra_properties = vec![(s("foo"), s("bar"))];
    m.expiration = Some(Text::from("97834022894"));
    m.priority = Value::Int(5);
    m.routing_key = s("wtenc-q1");
    let tag = "6f5a40da-e4ac-4c44-8d7f-2d714c8f3a44";
    let wire = concat!(
        r#"{"body": "W1sxLCAiYVx0YiIsIHsiX190eXBlX18iOiAiYmFzZTY0IiwgIl9fdmFsdWVfXyI6ICIvdz09In0sIDIuNSwgbnVsbCwgdHJ1ZSwgWzFdLCB7IjEiOiAyfV0sIHsiayI6IHsiX190eXBlX18iOiAiZGF0ZXRpbWUiLCAiX192YWx1ZV9fIjogIjIwMjAtMDEtMDFUMDA6MDA6MDAifX0sIHsiY2FsbGJhY2tzIjogW3sidGFzayI6ICJ4LmFkZCIsICJhcmdzIjogWzFdLCAia3dhcmdzIjoge30sICJvcHRpb25zIjoge30sICJzdWJ0YXNrX3R5cGUiOiBudWxsLCAiaW1tdXRhYmxlIjogZmFsc2V9XSwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "#,
        r#""content-encoding": "utf-8", "content-type": "application/json", "#,
        r#""headers": {"lang": "py", "task": "x.add", "id": "dacd3452-bcce-4a82-8474-375b5a3b4f63", "shadow": null, "eta": null, "expires": "2030-01-01T00:00:00", "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "dacd3452-bcce-4a82-8474-375b5a3b4f63", "parent_id": null, "argsrepr": "(1, 'a\tb', b'ff', 2.5, None, True, (1,), {1: 2})", "kwargsrepr": "{'k': datetime.datetime(2020, 1, 1, 0, 0)}", "origin": "gen10151@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": ["s1"], "stamps": {"s1": "v"}, "h1": 1}, "#,
        r#""properties": {"correlation_id": "dacd3452-bcce-4a82-8474-375b5a3b4f63", "reply_to": "8ca5c2bd-f5ee-34cd-80e9-efcbccc36ace", "foo": "bar", "delivery_mode": 2, "expiration": "97834022894", "delivery_info": {"exchange": "", "routing_key": "wtenc-q1"}, "priority": 5, "body_encoding": "base64", "delivery_tag": "6f5a40da-e4ac-4c44-8d7f-2d714c8f3a44"}}"#,
    );
    (m, tag, wire)
}

#[test]
fn envelope_is_byte_identical_to_a_captured_celery_message() {
    let (m, tag, wire) = captured_message();
    assert_eq!(envelope(&m, tag), wire);
}

#[test]
fn extra_headers_update_in_place_like_a_dict() {
    let (mut m, tag, _) = captured_message();
    m.extra_headers = vec![(s("retries"), Value::Int(7)), (s("zz"), Value::None)];
    let e = envelope(&m, tag);
    assert!(
        e.contains(r#""group_index": null, "retries": 7, "timelimit""#),
        "{e}"
    );
    assert!(e.contains(r#""stamps": {"s1": "v"}, "zz": null}"#), "{e}");
}

/// Builds `items` alike `template` and compares each with its full build
/// (an item's error with the full build's error).
fn assert_alike_equal_full_builds(mut template: TaskMessage, items: Vec<AlikeItem>) {
    let limits = ReprLimits::default();
    let before = template.clone();
    let alike = build_alike_envelopes(
        &mut template,
        items
            .iter()
            .cloned()
            .map(Ok)
            .chain([Err(Unsupported("bad".into()))])
            .collect(),
        &limits,
    )
    .unwrap();
    assert_eq!(alike.len(), items.len() + 1);
    assert_eq!(alike[items.len()], Err(Unsupported("bad".into())));
    for (item, got) in items.iter().zip(&alike) {
        let mut full = template.clone();
        full.id = item.id.clone();
        full.group_index = item.group_index.clone();
        full.args = item.args.clone();
        full.kwargs = item.kwargs.clone();
        if let Some(chain) = &item.chain {
            full.chain = chain.clone();
        }
        if let Some(clock) = &item.clock {
            full.eta = clock.eta.clone();
            full.expires = clock.expires.clone();
            full.expiration = clock.expiration.clone();
        }
        // a dict update of the template's headers
        for (key, value) in item.headers.iter().flatten() {
            match full.extra_headers.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value.clone(),
                None => full.extra_headers.push((key.clone(), value.clone())),
            }
        }
        let tag = "5c8c4a8e-2d0e-4f5b-9f55-1a2b3c4d5e6f";
        let mut expected = Vec::new();
        let expected = write_envelope(&mut expected, &full, &limits, tag).map(|()| expected);
        let got = got.clone().map(|bytes| {
            // Each message has a fresh delivery tag: compare with a fixed one.
            let text = String::from_utf8(bytes).unwrap();
            let at = text.rfind("\"delivery_tag\": \"").unwrap() + 17;
            format!("{}{tag}{}", &text[..at], &text[at + 36..]).into_bytes()
        });
        assert_eq!(got, expected);
    }
    assert_eq!(template, before, "the template is left as it was");
}

fn alike_items() -> Vec<AlikeItem> {
    (0..4)
        .map(|i| AlikeItem {
            // ids that JSON escapes too
            id: Text::from(
                if i == 2 {
                    "id-\u{e9}\"2".into()
                } else {
                    format!("id-{i}")
                }
                .as_str(),
            ),
            group_index: if i == 3 { Value::None } else { Value::Int(i) },
            args: Value::Tuple(vec![Value::Int(i), s("a\tb")]),
            kwargs: Value::Dict(vec![(s("k"), Value::Int(i))]),
            chain: (i % 2 == 1)
                .then(|| Value::List(vec![Value::Dict(vec![(s("id"), Value::Int(i))])])),
            clock: None,
            headers: None,
        })
        .collect()
}

/// `alike_items` with headers of their own, as a tracer's receiver adds
/// them: appended ones, none (the last), and ones that replace a standard
/// header or the template's own in place, or repeat a key.
fn headed_items() -> Vec<AlikeItem> {
    let mut items = alike_items();
    let trace = |i: usize| (s("traceparent"), s(&format!("00-{i:032}-{i:016}-01")));
    items[0].headers = Some(vec![trace(0), (s("tracestate"), s("k=v\"\u{e9}"))]);
    items[1].headers = Some(vec![(s("task"), s("renamed")), trace(1)]);
    items[2].headers = Some(vec![trace(2), (s("zz"), Value::Int(2))]);
    items
}

/// `alike_items` with clock fields of their own (the last keeps the
/// template's), an expiration where `expiration` says.
fn clocked_items(expiration: bool) -> Vec<AlikeItem> {
    let mut items = alike_items();
    for (i, item) in items.iter_mut().enumerate().take(3) {
        item.clock = Some(Clock {
            eta: s(&format!("2026-12-04T13:00:0{i}.123456+00:00")),
            expires: if i == 1 {
                Value::None
            } else {
                s(&format!("2026-12-05T00:00:0{i}"))
            },
            expiration: expiration.then(|| Text::from(format!("{}", 60000 - i).as_str())),
        });
    }
    items
}

#[test]
fn alike_messages_with_clocks_equal_their_full_builds() {
    let mut template = TaskMessage::new("t0", "x.add", Value::Tuple(vec![]), Value::Dict(vec![]));
    template.eta = s("2026-12-04T12:59:59+00:00");
    template.expires = s("2026-12-05T00:00:00");
    assert_alike_equal_full_builds(template.clone(), clocked_items(false));
    template.expiration = Some(Text::from("60001"));
    assert_alike_equal_full_builds(template.clone(), clocked_items(true));
    // an expiration in some messages and not in others: each written whole
    assert_alike_equal_full_builds(template.clone(), clocked_items(false));
    template.expiration = None;
    assert_alike_equal_full_builds(template, clocked_items(true));
}

#[test]
fn alike_messages_equal_their_full_builds() {
    let mut template = TaskMessage::new("t0", "x.add", Value::Tuple(vec![]), Value::Dict(vec![]));
    template.group_id = s("g");
    template.chain = Value::List(vec![s("the template's")]);
    assert_alike_equal_full_builds(template.clone(), alike_items());
    // a root id of its own, reprs set explicitly
    let mut own = template.clone();
    own.root_id = s("root");
    own.argsrepr = Some(s("(given)"));
    own.kwargsrepr = Some(s("{given}"));
    assert_alike_equal_full_builds(own, alike_items());
    // extra headers in the slots of the id and the group index, and after
    let mut extra = template.clone();
    extra.extra_headers = vec![
        (s("id"), s("header id")),
        (s("group_index"), Value::Int(7)),
        (s("zz"), s("tg-hole-lookalike")),
    ];
    extra.extra_properties = vec![(s("x-prop"), Value::Int(1))];
    assert_alike_equal_full_builds(extra, alike_items());
    // an envelope that does not write: each message gives its own error
    let mut reserved = template.clone();
    reserved.extra_properties = vec![(s("priority"), Value::Int(1))];
    assert_alike_equal_full_builds(reserved, alike_items());
    // an item whose arguments do not write
    let mut items = alike_items();
    items[1].kwargs = Value::Dict(vec![(Value::Bytes(vec![]), Value::None)]);
    assert_alike_equal_full_builds(template, items);
}

#[test]
fn alike_messages_with_headers_of_their_own_equal_their_full_builds() {
    let mut template = TaskMessage::new("t0", "x.add", Value::Tuple(vec![]), Value::Dict(vec![]));
    template.group_id = s("g");
    assert_alike_equal_full_builds(template.clone(), headed_items());
    // after the template's own extra headers (one of which an item replaces)
    template.extra_headers = vec![(s("zz"), s("template's")), (s("id"), s("header id"))];
    assert_alike_equal_full_builds(template.clone(), headed_items());
    // with clock holes too
    template.eta = s("2026-12-04T12:59:59+00:00");
    let mut items = clocked_items(false);
    for (item, headed) in items.iter_mut().zip(headed_items()) {
        item.headers = headed.headers;
    }
    assert_alike_equal_full_builds(template, items);
}

#[test]
fn checking_alike_items_checks_their_own_headers() {
    let mut template = TaskMessage::new("t0", "x.add", Value::Tuple(vec![]), Value::Dict(vec![]));
    let mut items = headed_items();
    items[1].headers = Some(vec![(
        s("bad"),
        Value::Dict(vec![(Value::Tuple(vec![]), Value::Int(1))]),
    )]);
    items[2].headers = Some(vec![(Value::Tuple(vec![]), Value::Int(1))]);
    assert_eq!(verdicts(&mut template, &items), [true, false, false, true]);
    // a bad value replacing one of the template's extra headers, not its last
    template.extra_headers = vec![(s("a"), Value::Int(1)), (s("b"), Value::Int(2))];
    items[1].headers = Some(vec![(
        s("a"),
        Value::Dict(vec![(Value::Tuple(vec![]), Value::Int(1))]),
    )]);
    items[2].headers = None;
    assert_eq!(verdicts(&mut template, &items), [true, false, true, true]);
}

/// Which items `check_alike` finds encodable, asserted to be the ones
/// `build_alike_envelopes` encodes.
fn verdicts(template: &mut TaskMessage, items: &[AlikeItem]) -> Vec<bool> {
    let limits = ReprLimits::default();
    let wrap = || items.iter().cloned().map(Ok).collect::<Vec<_>>();
    let built: Vec<bool> = build_alike_envelopes(template, wrap(), &limits)
        .unwrap()
        .iter()
        .map(Result::is_ok)
        .collect();
    let checked: Vec<bool> = check_alike(template, wrap(), &limits)
        .iter()
        .map(Result::is_ok)
        .collect();
    assert_eq!(checked, built);
    checked
}

#[test]
fn checking_alike_items_finds_what_building_them_finds() {
    let mut template = TaskMessage::new("t0", "x.add", Value::Tuple(vec![]), Value::Dict(vec![]));
    let bad_key = Value::Dict(vec![(Value::Tuple(vec![]), Value::Int(1))]);
    let item = |i: i64, kwargs: Value, index: Value| {
        Ok(AlikeItem {
            id: Text::from(format!("id-{i}").as_str()),
            group_index: index,
            args: Value::Tuple(vec![Value::Int(i)]),
            kwargs,
            chain: None,
            clock: None,
            headers: None,
        })
    };
    let items = || {
        vec![
            item(0, bad_key.clone(), Value::Int(0)),
            item(1, Value::Dict(vec![]), Value::Int(1)),
            item(2, bad_key.clone(), Value::Int(2)),
            item(
                3,
                Value::Dict(vec![]),
                Value::Dict(vec![(Value::List(vec![]), s("x"))]),
            ),
            Err(Unsupported("converted".into())),
            item(5, Value::List(vec![]), Value::Int(5)),
        ]
    };
    let limits = ReprLimits::default();
    let built = build_alike_envelopes(&mut template, items(), &limits).unwrap();
    let checked = check_alike(&mut template, items(), &limits);
    let verdicts =
        |v: Vec<Result<(), Unsupported>>| v.into_iter().map(|r| r.is_ok()).collect::<Vec<_>>();
    assert_eq!(
        verdicts(checked.clone()),
        verdicts(built.into_iter().map(|r| r.map(|_| ())).collect())
    );
    assert_eq!(verdicts(checked), [false, true, false, false, false, false]);
}

#[test]
fn falsy_root_id_defaults_to_the_task_id() {
    let (mut m, tag, _) = captured_message();
    m.root_id = s("");
    assert!(envelope(&m, tag).contains(r#""root_id": "dacd3452-bcce-4a82-8474-375b5a3b4f63""#));
    m.root_id = s("r");
    assert!(envelope(&m, tag).contains(r#""root_id": "r""#));
}

#[test]
fn explicit_reprs_are_used_verbatim() {
    let (mut m, tag, _) = captured_message();
    m.argsrepr = Some(s("A"));
    m.kwargsrepr = Some(Value::None);
    let e = envelope(&m, tag);
    assert!(
        e.contains(r#""argsrepr": "A", "kwargsrepr": null, "#),
        "{e}"
    );
}

#[test]
fn messages_celery_would_reject_or_kombu_would_rewrite_are_unsupported() {
    let (m, tag, _) = captured_message();
    let limits = ReprLimits::default();
    let mut bad = m.clone();
    bad.args = Value::Dict(vec![]);
    assert!(write_envelope(&mut Vec::new(), &bad, &limits, tag).is_err());
    let mut bad = m.clone();
    bad.kwargs = Value::List(vec![]);
    assert!(write_envelope(&mut Vec::new(), &bad, &limits, tag).is_err());
    for reserved in ["delivery_info", "priority", "content_type", "reply_to"] {
        let mut bad = m.clone();
        bad.extra_properties.push((s(reserved), Value::None));
        assert!(
            write_envelope(&mut Vec::new(), &bad, &limits, tag).is_err(),
            "{reserved}"
        );
    }
    let mut bad = m.clone();
    bad.kwargs = Value::Dict(vec![(Value::Bytes(vec![]), Value::None)]);
    assert!(write_envelope(&mut Vec::new(), &bad, &limits, tag).is_err());
}

#[test]
fn batch_gives_each_message_its_own_delivery_tag() {
    let (m, _, _) = captured_message();
    let mut bad = m.clone();
    bad.args = Value::None;
    let early = Unsupported("found while converting".into());
    let batch = [Ok(m.clone()), Ok(bad), Ok(m), Err(early.clone())];
    let out = build_envelopes(&batch, &ReprLimits::default()).unwrap();
    assert!(out[1].is_err());
    assert_eq!(out[3], Err(early));
    let a = String::from_utf8(out[0].clone().unwrap()).unwrap();
    let c = String::from_utf8(out[2].clone().unwrap()).unwrap();
    assert_ne!(a, c);
    let tag_of = |e: &str| e[e.find(r#""delivery_tag": ""#).unwrap()..].to_owned();
    assert_eq!(
        tag_of(&a).len(),
        r#""delivery_tag": "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"}}"#.len()
    );
    assert_eq!(a.replace(&tag_of(&a), ""), c.replace(&tag_of(&c), ""));
}
