//! The compiled digit trie: a flat arena of 16-byte nodes, path-compressed, children found by
//! a 10-bit bitmap and popcount. See `docs/routing.md` for the layout and why.

/// `Node::list` of a node that ends no prefix.
pub(crate) const NO_LIST: u32 = u32::MAX;
/// Most digits a node's compressed edge carries (12 nibbles fill the 48 spare bits).
pub(crate) const MAX_SKIP: usize = 12;

const BITMAP_MASK: u64 = 0x3FF;
const EXACT_BIT: u64 = 1 << 10;
const SKIP_LEN_SHIFT: u32 = 11;
const SKIP_SHIFT: u32 = 16;

/// One trie node. A node stands for the digit string that leads to it: the parent's string,
/// one branch digit (its position in the parent's bitmap), then `skip_len` compressed digits.
///
/// `meta` packs, from the low bits: the child bitmap (bits 0–9, one per digit), the exact flag
/// (bit 10: a ported number ends here), `skip_len` (bits 11–14) and the skipped digits as
/// right-aligned nibbles (bits 16–63).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Node {
    /// Arena index of the first child; children are contiguous, in digit order.
    pub first_child: u32,
    /// Candidate list of the prefix ending here, or [`NO_LIST`].
    pub list: u32,
    pub meta: u64,
}

impl Node {
    pub const EMPTY: Node = Node {
        first_child: 0,
        list: NO_LIST,
        meta: 0,
    };

    pub fn with_skip(skip: u64, skip_len: usize) -> Node {
        debug_assert!(skip_len <= MAX_SKIP);
        Node {
            meta: (skip << SKIP_SHIFT) | ((skip_len as u64) << SKIP_LEN_SHIFT),
            ..Node::EMPTY
        }
    }
    #[inline]
    fn bitmap(&self) -> u32 {
        (self.meta & BITMAP_MASK) as u32
    }
    pub fn set_children(&mut self, first_child: u32, bitmap: u32) {
        self.first_child = first_child;
        self.meta |= u64::from(bitmap) & BITMAP_MASK;
    }
    pub fn set_exact(&mut self) {
        self.meta |= EXACT_BIT;
    }
    #[inline]
    fn has_exact(&self) -> bool {
        self.meta & EXACT_BIT != 0
    }
    #[inline]
    fn skip_len(&self) -> usize {
        ((self.meta >> SKIP_LEN_SHIFT) & 0xF) as usize
    }
    #[inline]
    fn skip(&self) -> u64 {
        self.meta >> SKIP_SHIFT
    }
}

/// Digit `i` of big-endian packed nibbles.
#[inline]
pub(crate) fn digit(packed: u64, i: usize) -> u32 {
    ((packed >> (60 - 4 * i)) & 0xF) as u32
}

/// Digits `from .. from + count` of packed nibbles, right-aligned (`count` ≤ 12, `from` ≤ 15).
#[inline]
pub(crate) fn chunk(packed: u64, from: usize, count: usize) -> u64 {
    ((packed << (4 * from)) >> SKIP_SHIFT) >> (48 - 4 * count)
}

/// Where a lookup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hit {
    /// Candidate list of the longest matching prefix (0, the empty list, when none matched).
    pub list: u32,
    /// Index into the ported table when the whole number is a ported number.
    pub ported: Option<u32>,
}

/// The arena plus the side table of ported numbers, sorted by node.
#[derive(Clone, Debug, Default)]
pub(crate) struct Trie {
    pub nodes: Vec<Node>,
    /// `(node, list, ported index)` for nodes with the exact flag, sorted by node.
    pub exact: Vec<(u32, u32, u32)>,
}

impl Trie {
    /// Longest-prefix match of `len` packed digits; with `exact`, a ported number that equals
    /// all `len` digits wins over every prefix.
    #[inline]
    pub fn lookup(&self, packed: u64, len: usize, exact: bool) -> Hit {
        let nodes = &self.nodes[..];
        let mut best = 0;
        let mut at = 0usize;
        let mut node = nodes[0];
        let mut depth = 0usize;
        loop {
            if depth == len {
                if exact && node.has_exact() {
                    return self.exact_hit(at as u32, best);
                }
                break;
            }
            let d = digit(packed, depth);
            let bitmap = node.bitmap();
            if bitmap & (1 << d) == 0 {
                break;
            }
            at = (node.first_child + (bitmap & ((1 << d) - 1)).count_ones()) as usize;
            node = nodes[at];
            depth += 1;
            let skip_len = node.skip_len();
            if depth + skip_len > len || chunk(packed, depth, skip_len) != node.skip() {
                break;
            }
            depth += skip_len;
            if node.list != NO_LIST {
                best = node.list;
            }
        }
        Hit {
            list: best,
            ported: None,
        }
    }

    #[cold]
    fn exact_hit(&self, node: u32, best: u32) -> Hit {
        match self.exact.binary_search_by_key(&node, |e| e.0) {
            Ok(i) => Hit {
                list: self.exact[i].1,
                ported: Some(self.exact[i].2),
            },
            Err(_) => Hit {
                list: best,
                ported: None,
            },
        }
    }

    /// Calls `visit(depth, node index)` for every node on the path of the digits that ends a
    /// prefix (has a list), shallowest first. Cold path: used by `explain`.
    pub fn walk(&self, packed: u64, len: usize, mut visit: impl FnMut(usize, u32)) {
        let mut node = self.nodes[0];
        let mut depth = 0usize;
        while depth < len {
            let d = digit(packed, depth);
            let bitmap = node.bitmap();
            if bitmap & (1 << d) == 0 {
                return;
            }
            let at = node.first_child + (bitmap & ((1 << d) - 1)).count_ones();
            node = self.nodes[at as usize];
            depth += 1;
            let skip_len = node.skip_len();
            if depth + skip_len > len || chunk(packed, depth, skip_len) != node.skip() {
                return;
            }
            depth += skip_len;
            if node.list != NO_LIST {
                visit(depth, at);
            }
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.nodes.len() * size_of::<Node>() + self.exact.len() * size_of::<(u32, u32, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_is_sixteen_bytes() {
        assert_eq!(size_of::<Node>(), 16);
    }

    #[test]
    fn chunk_extracts_digit_runs() {
        let packed = smsroute_types::pack_digits(b"447700900123");
        assert_eq!(chunk(packed, 0, 2), 0x44);
        assert_eq!(chunk(packed, 2, 4), 0x7700);
        assert_eq!(chunk(packed, 5, 0), 0);
        assert_eq!(chunk(packed, 3, 12), 0x7009_0012_3000);
        assert_eq!(digit(packed, 11), 3);
    }

    #[test]
    fn meta_fields_do_not_overlap() {
        let mut n = Node::with_skip(0x1234_5678_9012, 12);
        n.set_children(7, 0x3FF);
        n.set_exact();
        assert_eq!(
            (n.skip(), n.skip_len(), n.bitmap(), n.has_exact()),
            (0x1234_5678_9012, 12, 0x3FF, true)
        );
    }
}
