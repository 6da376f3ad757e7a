//! The Rust `saferepr` against what Celery 5.7.0's renders.

use turbogroup_core::encode::saferepr::saferepr;
use turbogroup_core::encode::{TagKind, Text, Value};

fn s(x: &str) -> Value {
    Value::str(x)
}

fn tuple(items: Vec<Value>) -> Value {
    Value::Tuple(items)
}

fn list(items: Vec<Value>) -> Value {
    Value::List(items)
}

fn repr(v: &Value, maxlen: Option<i64>, maxlevels: usize) -> String {
    String::from_utf8(saferepr(v, maxlen, maxlevels).as_bytes().to_vec()).unwrap()
}

fn celery(v: &Value) -> String {
    repr(v, Some(1024), 3)
}

// Expected strings below were produced by Celery 5.7.0's
// `celery.utils.saferepr.saferepr` for the Python value in the comment.

#[test]
fn scalars_strings_and_bytes_render_like_celery() {
    // (1, 'a\tb', b'\xff', 2.5, None, True, (1,), {1: 2})
    let v = tuple(vec![
        Value::Int(1),
        s("a\tb"),
        Value::Bytes(vec![0xff]),
        Value::Float(2.5),
        Value::None,
        Value::Bool(true),
        tuple(vec![Value::Int(1)]),
        Value::Dict(vec![(Value::Int(1), Value::Int(2))]),
    ]);
    assert_eq!(
        celery(&v),
        "(1, 'a\tb', b'ff', 2.5, None, True, (1,), {1: 2})"
    );
    // (10**30, -5, 1e16, nan, -inf, False)
    let v = tuple(vec![
        Value::BigInt("1000000000000000000000000000000".into()),
        Value::Int(-5),
        Value::Float(1e16),
        Value::Float(f64::NAN),
        Value::Float(f64::NEG_INFINITY),
        Value::Bool(false),
    ]);
    assert_eq!(
        celery(&v),
        "(1000000000000000000000000000000, -5, 1e+16, nan, -inf, False)"
    );
}

#[test]
fn only_single_quotes_are_escaped() {
    // ("it's", 'back\\slash', 'nul\x00', 'nl\n')
    let v = tuple(vec![s("it's"), s("back\\slash"), s("nul\0"), s("nl\n")]);
    assert_eq!(celery(&v), "('it\\'s', 'back\\slash', 'nul\0', 'nl\n')");
}

#[test]
fn containers_past_maxlevels_collapse() {
    // ([[[1]]], {'a': {'b': {'c': 1}}}, ((1,),), [[[]]])
    let v = tuple(vec![
        list(vec![list(vec![list(vec![Value::Int(1)])])]),
        Value::Dict(vec![(
            s("a"),
            Value::Dict(vec![(s("b"), Value::Dict(vec![(s("c"), Value::Int(1))]))]),
        )]),
        tuple(vec![tuple(vec![Value::Int(1)])]),
        list(vec![list(vec![list(vec![])])]),
    ]);
    assert_eq!(
        celery(&v),
        "([[[...]]], {'a': {'b': {...}}}, ((1,),), [[[...]]])"
    );
    // ((), [], {}, ('x',))
    let v = tuple(vec![
        tuple(vec![]),
        list(vec![]),
        Value::Dict(vec![]),
        tuple(vec![s("x")]),
    ]);
    assert_eq!(celery(&v), "((), [], {}, ('x',))");
    // saferepr(([[[[1]]]], 'y' * 50), None, maxlevels=0)
    let v = tuple(vec![
        list(vec![list(vec![list(vec![list(vec![Value::Int(1)])])])]),
        s(&"y".repeat(50)),
    ]);
    assert_eq!(
        repr(&v, None, 0),
        format!("([[[[1]]]], '{}')", "y".repeat(50))
    );
}

#[test]
fn dict_keys_restart_the_level_count() {
    // {(1, (2, (3, (4,)))): 1}
    let key = tuple(vec![
        Value::Int(1),
        tuple(vec![
            Value::Int(2),
            tuple(vec![Value::Int(3), tuple(vec![Value::Int(4)])]),
        ]),
    ]);
    let v = Value::Dict(vec![(key, Value::Int(1))]);
    assert_eq!(celery(&v), "{(1, (2, (3, (...,)))): 1}");
}

#[test]
fn truncation_overshoots_maxlen_like_celery() {
    // ('x' * 2000,) -> 1031 characters
    let v = tuple(vec![s(&"x".repeat(2000))]);
    assert_eq!(celery(&v), format!("('{}...',)", "x".repeat(1023)));
    // ('hello world ' * 200,): cut at the last space before the limit
    let r = celery(&tuple(vec![s(&"hello world ".repeat(200))]));
    assert_eq!(r.len(), 1027);
    assert!(r.ends_with(" hello world...',)"));
    // (list(range(1000)),)
    let r = celery(&tuple(vec![list((0..1000).map(Value::Int).collect())]));
    assert_eq!(r.len(), 1035);
    assert!(r.ends_with(", 224, 225, 22..., ...],)"), "{r}");
    // {'k%d' % i: 'v' * 10 for i in range(200)}
    let d = Value::Dict(
        (0..200)
            .map(|i| (s(&format!("k{i}")), s(&"v".repeat(10))))
            .collect(),
    );
    let r = celery(&d);
    assert_eq!(r.len(), 1031);
    assert!(r.ends_with("'k48': 'vvvvvvvvvv', 'k49', ...}"), "{r}");
}

#[test]
fn bytes_are_cut_by_byte_count() {
    // (b'a' * 2000,)
    let r = celery(&tuple(vec![Value::Bytes(vec![b'a'; 2000])]));
    assert_eq!(r, format!("(b'{}...',)", "a".repeat(1023)));
    // ('é'.encode() * 600,): the 1023 bytes left after "(" end inside
    // an 'é', so the kept chunk is not UTF-8 and shows as hex.
    let r = celery(&tuple(vec![Value::Bytes(
        "\u{e9}".repeat(600).into_bytes(),
    )]));
    assert_eq!(r.len(), 2055);
    assert!(r.ends_with("a9c3a9c3...',)"));
}

#[test]
fn limit_reached_next_to_brackets() {
    // saferepr((['a' * 20], 'b'), 12)
    let v = tuple(vec![list(vec![s(&"a".repeat(20))]), s("b")]);
    assert_eq!(repr(&v, Some(12), 3), "(['aaaaaaaaaa...'], ...)");
    // saferepr(([1, [2, [3, 4]], 5], 6), 8)
    let v = tuple(vec![
        list(vec![
            Value::Int(1),
            list(vec![
                Value::Int(2),
                list(vec![Value::Int(3), Value::Int(4)]),
            ]),
            Value::Int(5),
        ]),
        Value::Int(6),
    ]);
    assert_eq!(repr(&v, Some(8), 3), "([1, [2, , ...]])");
    // saferepr(('abcdefgh', [1, 2], 3), 12)
    let v = tuple(vec![
        s("abcdefgh"),
        list(vec![Value::Int(1), Value::Int(2)]),
        Value::Int(3),
    ]);
    assert_eq!(repr(&v, Some(12), 3), "('abcdefgh', , ...)");
}

#[test]
fn tagged_values_show_their_python_repr() {
    let v = tuple(vec![Value::Tagged {
        kind: TagKind::Decimal,
        encoded: Text::from("1.5"),
        repr: Text::from("Decimal('1.5')"),
    }]);
    assert_eq!(celery(&v), "(Decimal('1.5'),)");
}
