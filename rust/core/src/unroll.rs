//! Unroll plans for nested groups.
//!
//! The Python layer walks a group once (it must: every node has to be
//! converted with `maybe_signature` and cloned) and describes its shape as a
//! pre-order list of codes: `LEAF` for a task, `n >= 0` for a nested group
//! with `n` children. From that shape this module computes the order in
//! which Celery 5.7.0 freezes the leaves and the `group_index` each gets.

use std::collections::VecDeque;
use std::fmt;

/// Shape code of a leaf (a task, chain or chord: anything but a group).
pub const LEAF: i64 = -1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A leaf, numbered in pre-order (the order the Python walk met it).
    Leaf(usize),
    /// A nested group and its children.
    Group(Vec<Node>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    /// A code below `LEAF`.
    BadCode { position: usize, code: i64 },
    /// The codes ended inside a group.
    Truncated { expected: usize },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::BadCode { position, code } => {
                write!(f, "invalid shape code {code} at position {position}")
            }
            ShapeError::Truncated { expected } => {
                write!(f, "shape ended early: {expected} more node(s) expected")
            }
        }
    }
}

impl std::error::Error for ShapeError {}

/// Parse a pre-order shape into the top-level children of a group.
/// Codes after the last complete top-level node are read as more top-level
/// nodes, so the caller never has to count the top level itself.
pub fn parse(codes: &[i64]) -> Result<Vec<Node>, ShapeError> {
    let mut pos = 0;
    let mut leaves = 0;
    let mut top = Vec::new();
    while pos < codes.len() {
        top.push(parse_node(codes, &mut pos, &mut leaves)?);
    }
    Ok(top)
}

fn parse_node(codes: &[i64], pos: &mut usize, leaves: &mut usize) -> Result<Node, ShapeError> {
    // Iterative over siblings, recursive over depth: depth is bounded by
    // how deeply a user nests groups, which Python's own recursion limit
    // already bounds when the shape is built.
    let Some(&code) = codes.get(*pos) else {
        return Err(ShapeError::Truncated { expected: 1 });
    };
    let at = *pos;
    *pos += 1;
    match code {
        LEAF => {
            let n = *leaves;
            *leaves += 1;
            Ok(Node::Leaf(n))
        }
        n if n >= 0 => {
            let n = n as usize;
            let mut children = Vec::with_capacity(n.min(codes.len()));
            for done in 0..n {
                if *pos >= codes.len() {
                    return Err(ShapeError::Truncated { expected: n - done });
                }
                children.push(parse_node(codes, pos, leaves)?);
            }
            Ok(Node::Group(children))
        }
        code => Err(ShapeError::BadCode { position: at, code }),
    }
}

/// Leaf numbers in the order `celery.canvas.group._freeze_unroll` freezes
/// them; a leaf's `group_index` is its position in the returned vector.
///
/// Matches Celery 5.7.0 exactly, quirk included: a nested group's children
/// go back on the work deque with `deque.extendleft`, which reverses them,
/// so `[a, [b, c], d]` freezes as a, c, b, d.
pub fn freeze_unroll_order(top: &[Node]) -> Vec<usize> {
    let mut stack: VecDeque<&Node> = top.iter().collect();
    let mut order = Vec::new();
    while let Some(node) = stack.pop_front() {
        match node {
            Node::Leaf(n) => order.push(*n),
            Node::Group(children) => {
                for child in children {
                    stack.push_front(child);
                }
            }
        }
    }
    order
}

/// Convenience for the binding: parse and order in one step.
pub fn freeze_unroll_order_of(codes: &[i64]) -> Result<Vec<usize>, ShapeError> {
    Ok(freeze_unroll_order(&parse(codes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_group_keeps_its_order() {
        assert_eq!(
            freeze_unroll_order_of(&[LEAF, LEAF, LEAF]).unwrap(),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn nested_group_children_are_reversed_like_extendleft() {
        // [a, [b, c], d] -> a, c, b, d
        assert_eq!(
            freeze_unroll_order_of(&[LEAF, 2, LEAF, LEAF, LEAF]).unwrap(),
            vec![0, 2, 1, 3]
        );
    }

    #[test]
    fn deeper_nesting_reverses_at_every_level() {
        // [[a, [b, c]], d]: pop outer -> [[b,c], a, d]; pop inner -> [c, b, a, d]
        assert_eq!(
            freeze_unroll_order_of(&[2, LEAF, 2, LEAF, LEAF, LEAF]).unwrap(),
            vec![2, 1, 0, 3]
        );
    }

    #[test]
    fn empty_nested_groups_contribute_nothing() {
        assert_eq!(
            freeze_unroll_order_of(&[LEAF, 0, LEAF]).unwrap(),
            vec![0, 1]
        );
        assert!(freeze_unroll_order_of(&[]).unwrap().is_empty());
    }

    #[test]
    fn matches_a_literal_deque_simulation() {
        // Reference: the same algorithm written against a VecDeque of
        // nested Vecs, the way Python's deque sees it.
        let shape = [LEAF, 3, LEAF, 1, LEAF, LEAF, 2, LEAF, 0, LEAF];
        let order = freeze_unroll_order_of(&shape).unwrap();
        // Leaves in pre-order: 0, 1, 2, 3, 4, 5.
        // top: [0, G(1, G(2), 3), G(4, G()), 5]
        // pop 0 -> [G(1,G(2),3), G(4,G()), 5]
        // pop G -> [3, G(2), 1, G(4,G()), 5]; 3, then G(2) -> [2, 1, ...]
        // then 2, 1, then G(4,G()) -> [G(), 4, 5] -> 4, 5
        assert_eq!(order, vec![0, 3, 2, 1, 4, 5]);
    }

    #[test]
    fn malformed_shapes_are_errors() {
        assert_eq!(
            parse(&[2, LEAF]).unwrap_err(),
            ShapeError::Truncated { expected: 1 }
        );
        assert_eq!(
            parse(&[LEAF, -7]).unwrap_err(),
            ShapeError::BadCode {
                position: 1,
                code: -7
            }
        );
    }
}
