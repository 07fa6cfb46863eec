//! The baselines: a plain 10-ary trie with one pointer per digit, and an ordered list of
//! `^prefix` patterns scanned first-match (as Jasmin routes). Longest-prefix match only.

/// A 10-ary trie node: one boxed child per digit.
#[derive(Default)]
struct NaiveNode {
    children: [Option<Box<NaiveNode>>; 10],
    value: Option<u32>,
}

/// A pointer-per-digit trie mapping prefixes to values.
#[derive(Default)]
pub struct NaiveTrie {
    root: NaiveNode,
    nodes: usize,
}

impl NaiveTrie {
    /// Inserts `prefix` (ASCII digits) with `value`.
    pub fn insert(&mut self, prefix: &str, value: u32) {
        let mut node = &mut self.root;
        for b in prefix.bytes() {
            let slot = &mut node.children[usize::from(b - b'0')];
            if slot.is_none() {
                self.nodes += 1;
            }
            node = slot.get_or_insert_with(Box::default);
        }
        node.value = Some(value);
    }

    /// The value of the longest prefix of `digits`.
    #[inline]
    pub fn longest_match(&self, digits: &[u8]) -> Option<u32> {
        let mut node = &self.root;
        let mut best = node.value;
        for &b in digits {
            match &node.children[usize::from(b - b'0')] {
                Some(child) => {
                    node = child;
                    if node.value.is_some() {
                        best = node.value;
                    }
                }
                None => break,
            }
        }
        best
    }

    /// Heap bytes of the nodes.
    pub fn memory_bytes(&self) -> usize {
        (self.nodes + 1) * size_of::<NaiveNode>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let mut t = NaiveTrie::default();
        t.insert("44", 1);
        t.insert("447", 2);
        t.insert("4470099", 3);
        assert_eq!(t.longest_match(b"447700900123"), Some(2));
        assert_eq!(t.longest_match(b"441234"), Some(1));
        assert_eq!(t.longest_match(b"4470099123"), Some(3));
        assert_eq!(t.longest_match(b"33"), None);
    }
}
