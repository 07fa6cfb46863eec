//! The compiled digit trie: a flat arena of 16-byte nodes, path-compressed, children found by
//! a 10-bit bitmap and popcount, entered through a direct-indexed jump table on the first few
//! digits. See `docs/routing.md` for the layout and the measurements behind it.

/// Most digits a node's compressed edge carries (12 nibbles fill the 48 spare bits).
pub(crate) const MAX_SKIP: usize = 12;
/// Most digits the jump table indexes (numbers have at least 7).
const MAX_JUMP_DIGITS: usize = 6;

const BITMAP_MASK: u64 = 0x3FF;
const EXACT_BIT: u64 = 1 << 10;
const SKIP_LEN_SHIFT: u32 = 11;
const TERMINAL_BIT: u64 = 1 << 15;
const SKIP_SHIFT: u32 = 16;

/// One trie node. A node stands for the digit string that leads to it: the parent's string,
/// one branch digit (its position in the parent's bitmap), then `skip_len` compressed digits.
///
/// `meta` packs, from the low bits: the child bitmap (bits 0–9, one per digit), the exact flag
/// (bit 10: a ported number ends here), `skip_len` (bits 11–14), the terminal flag (bit 15: a
/// route or block prefix ends here) and the skipped digits as right-aligned nibbles (16–63).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Node {
    /// Arena index of the first child; children are contiguous, in digit order.
    pub first_child: u32,
    /// Candidate list of the longest prefix that ends here or above (pushed down at compile
    /// time, so a lookup keeps no "best so far").
    pub list: u32,
    pub meta: u64,
}

impl Node {
    pub const EMPTY: Node = Node {
        first_child: 0,
        list: 0,
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
    pub fn set_terminal(&mut self) {
        self.meta |= TERMINAL_BIT;
    }
    fn is_terminal(&self) -> bool {
        self.meta & TERMINAL_BIT != 0
    }
    #[inline]
    fn skip_len(&self) -> usize {
        ((self.meta >> SKIP_LEN_SHIFT) & 0xF) as usize
    }
    #[inline]
    fn skip(&self) -> u64 {
        self.meta >> SKIP_SHIFT
    }
    /// The child for digit `d`, if any.
    #[inline]
    fn child(&self, d: u32) -> Option<u32> {
        let bitmap = self.bitmap();
        (bitmap & (1 << d) != 0).then(|| self.first_child + (bitmap & ((1 << d) - 1)).count_ones())
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

/// The first `count` digits as a decimal number.
#[inline]
fn decimal_prefix(packed: u64, count: usize) -> usize {
    (0..count).fold(0, |acc, i| acc * 10 + digit(packed, i) as usize)
}

/// Where a lookup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hit {
    /// Candidate list of the longest matching prefix (0, the empty list, when none matched).
    pub list: u32,
    /// Index into the ported table when the whole number is a ported number.
    pub ported: Option<u32>,
}

/// `Node::list` of a start node rebuilt from a jump entry: its list is not in the entry.
/// List ids never take this value (the interner keeps offsets below 2^27 - 1).
const UNKNOWN_LIST: u32 = u32::MAX;

/// Where a walk resumes after the jump table: the start node's first child (bits 0–31), child
/// bitmap (32–41) and depth (42–44). Eight bytes, half a node, so the table every lookup
/// touches stays small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct JumpEntry(u64);

impl JumpEntry {
    fn new(node: &Node, depth: usize) -> Self {
        JumpEntry(
            u64::from(node.first_child) | (u64::from(node.bitmap()) << 32) | ((depth as u64) << 42),
        )
    }

    /// The start node (children only: list unknown, no flags, no edge) and its depth.
    #[inline]
    fn start(self) -> (Node, usize) {
        let node = Node {
            first_child: self.0 as u32,
            list: UNKNOWN_LIST,
            meta: (self.0 >> 32) & BITMAP_MASK,
        };
        (node, ((self.0 >> 42) & 7) as usize)
    }
}

/// The arena, the jump table and the side table of ported numbers.
#[derive(Clone, Debug, Default)]
pub(crate) struct Trie {
    pub nodes: Vec<Node>,
    /// For every string of `jump_digits` digits, where the walk resumes: the deepest node on
    /// that path ending within those digits, as a [`JumpEntry`] (its children and depth), so a
    /// lookup starts there without loading the node itself.
    jump: Vec<JumpEntry>,
    /// The list of each jump entry's node, read only when the walk stops right there.
    jump_lists: Vec<u32>,
    jump_digits: usize,
    /// `(node, list, ported index)` for nodes with the exact flag, sorted by node.
    pub exact: Vec<(u32, u32, u32)>,
}

impl Trie {
    /// Wraps a built arena and adds the jump table, sized to stay a small fraction of it.
    pub fn new(nodes: Vec<Node>) -> Trie {
        let mut jump_digits = 0;
        while jump_digits < MAX_JUMP_DIGITS
            && 10usize.pow(jump_digits as u32 + 1) * 2 <= nodes.len()
        {
            jump_digits += 1;
        }
        let mut trie = Trie {
            nodes,
            jump: Vec::new(),
            jump_lists: Vec::new(),
            jump_digits,
            exact: Vec::new(),
        };
        if jump_digits > 0 {
            trie.jump = vec![JumpEntry(0); 10usize.pow(jump_digits as u32)];
            trie.jump_lists = vec![0; 10usize.pow(jump_digits as u32)];
            trie.fill_jump(0, 0, 0);
        }
        trie
    }

    /// Points every jump entry under `node`'s string (`value`, `depth` digits) at `node`, then
    /// lets the children that end within the jump digits overwrite their share.
    fn fill_jump(&mut self, at: u32, depth: usize, value: usize) {
        let span = 10usize.pow((self.jump_digits - depth) as u32);
        let node = self.nodes[at as usize];
        let entry = JumpEntry::new(&node, depth);
        self.jump[value * span..(value + 1) * span].fill(entry);
        self.jump_lists[value * span..(value + 1) * span].fill(node.list);
        for d in 0..10 {
            let Some(child_at) = node.child(d) else {
                continue;
            };
            let child = self.nodes[child_at as usize];
            let end = depth + 1 + child.skip_len();
            if end > self.jump_digits {
                continue;
            }
            let mut child_value = value * 10 + d as usize;
            for i in (0..child.skip_len()).rev() {
                child_value = child_value * 10 + ((child.skip() >> (4 * i)) & 0xF) as usize;
            }
            self.fill_jump(child_at, end, child_value);
        }
    }

    /// Longest-prefix match of `len` packed digits; with `exact`, a ported number that equals
    /// all `len` digits wins over every prefix.
    #[inline]
    pub fn lookup(&self, packed: u64, len: usize, exact: bool) -> Hit {
        // Numbers (7+ digits) always go on past the jump digits, so the start node never needs
        // its exact flag or index; its list is fetched only if the walk stops there.
        let entry = (self.jump_digits > 0 && len >= self.jump_digits)
            .then(|| decimal_prefix(packed, self.jump_digits));
        let (mut node, mut depth) = match entry {
            Some(e) => self.jump[e].start(),
            None => (self.nodes[0], 0),
        };
        let mut at = 0usize;
        while depth < len {
            let Some((child_at, child, end)) = self.descend(&node, packed, depth, len) else {
                break;
            };
            (node, at, depth) = (child, child_at as usize, end);
        }
        if node.list == UNKNOWN_LIST {
            // The walk stopped at the jump table's start node.
            let list = entry.map_or(0, |e| self.jump_lists[e]);
            return Hit { list, ported: None };
        }
        if exact && depth == len && node.has_exact() {
            return self.exact_hit(at as u32, node.list);
        }
        Hit {
            list: node.list,
            ported: None,
        }
    }

    #[cold]
    fn exact_hit(&self, node: u32, prefix_list: u32) -> Hit {
        match self.exact.binary_search_by_key(&node, |e| e.0) {
            Ok(i) => Hit {
                list: self.exact[i].1,
                ported: Some(self.exact[i].2),
            },
            Err(_) => Hit {
                list: prefix_list,
                ported: None,
            },
        }
    }

    /// Calls `visit(depth, node index)` for every node on the path of the digits where a route
    /// or block prefix ends, shallowest first. Cold path: used by `explain`.
    pub fn walk(&self, packed: u64, len: usize, mut visit: impl FnMut(usize, u32)) {
        let mut node = self.nodes[0];
        let mut depth = 0usize;
        while depth < len {
            let Some((at, child, end)) = self.descend(&node, packed, depth, len) else {
                return;
            };
            (node, depth) = (child, end);
            if node.is_terminal() {
                visit(depth, at);
            }
        }
    }

    /// One step of a walk: the child of `node` that the digit at `depth` leads to, if its whole
    /// edge matches within `len` digits, as (index, node, depth after its edge).
    #[inline]
    fn descend(
        &self,
        node: &Node,
        packed: u64,
        depth: usize,
        len: usize,
    ) -> Option<(u32, Node, usize)> {
        let at = node.child(digit(packed, depth))?;
        let child = self.nodes[at as usize];
        let skip_len = child.skip_len();
        let end = depth + 1 + skip_len;
        if end > len || chunk(packed, depth + 1, skip_len) != child.skip() {
            return None;
        }
        Some((at, child, end))
    }

    pub fn memory_bytes(&self) -> usize {
        self.nodes.len() * size_of::<Node>()
            + self.jump.len() * size_of::<JumpEntry>()
            + self.jump_lists.len() * size_of::<u32>()
            + self.exact.len() * size_of::<(u32, u32, u32)>()
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
        assert_eq!(decimal_prefix(packed, 5), 44770);
    }

    #[test]
    fn meta_fields_do_not_overlap() {
        let mut n = Node::with_skip(0x1234_5678_9012, 12);
        n.set_children(7, 0x3FF);
        n.set_exact();
        n.set_terminal();
        assert_eq!(
            (n.skip(), n.skip_len(), n.bitmap(), n.has_exact()),
            (0x1234_5678_9012, 12, 0x3FF, true)
        );
        assert!(n.is_terminal());
    }
}
