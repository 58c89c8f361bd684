//! Topic-exchange routing: matching routing keys against binding patterns.
//!
//! Responsibilities:
//! - [`TopicTrie`] indexes `(pattern, value)` bindings on a word trie so routing a message costs
//!   time proportional to the routing key and the part of the trie it can reach, not to the number
//!   of bindings on the exchange.
//! - [`topic_matches`] is a straightforward matcher for one pattern, used where a single check is
//!   needed (e.g. topic permissions) and as the reference the trie is tested against.
//!
//! Semantics follow RabbitMQ exactly:
//! - Keys and patterns are split into words on `.`; the empty string is *zero* words, while any
//!   other string has one word more than it has dots, so `"a..b"` is `["a", "", "b"]` and `"."` is
//!   two empty words. Empty words are ordinary literal words.
//! - A pattern word that is exactly `*` matches exactly one word; exactly `#` matches zero or more
//!   words. Any other word, including `a*` or `#b`, is a literal. A `*` or `#` in a routing key is a
//!   literal word that only a wildcard can match.
//!
//! Invariants of the trie:
//! - Every node holding no value has at least one child: `remove` prunes emptied branches, so the
//!   trie's size tracks the live bindings, not every binding ever made.
//! - A `(pattern, value)` pair is stored at most once, in the node the pattern's words lead to;
//!   `len` counts those pairs.
//! - Matching walks the trie as an NFA over sets of nodes, so each node is visited at most once per
//!   routing-key word: patterns such as `#.#.#.#` cost linear time, never exponential.

use std::collections::HashSet;

/// Splits a routing key or binding pattern into words as RabbitMQ does: `""` is no words at all,
/// so that `""` is matched by `#` but not by `*`.
fn words(s: &str) -> impl Iterator<Item = &str> {
    // `split` on "" would yield one empty word; RabbitMQ treats the empty key as zero words.
    let skip_all = s.is_empty();
    s.split('.').filter(move |_| !skip_all)
}

/// One trie node: the bindings whose pattern ends here, and the edges for the next pattern word.
#[derive(Debug)]
struct Node<T> {
    /// Edges for literal words; wildcards are kept apart so a literal `*` or `#` routing-key word
    /// never follows a wildcard edge as if it were a literal.
    literals: crate::FastMap<Box<str>, Node<T>>,
    /// Edge for a `*` pattern word.
    star: Option<Box<Node<T>>>,
    /// Edge for a `#` pattern word; the node it leads to may consume any number of further words.
    hash: Option<Box<Node<T>>>,
    /// Values bound with the pattern that ends at this node, without duplicates.
    values: Vec<T>,
}

impl<T> Node<T> {
    fn new() -> Self {
        Self {
            literals: crate::FastMap::default(),
            star: None,
            hash: None,
            values: Vec::new(),
        }
    }

    /// True when nothing is bound here or below, so the node can be pruned.
    fn is_empty(&self) -> bool {
        self.values.is_empty()
            && self.literals.is_empty()
            && self.star.is_none()
            && self.hash.is_none()
    }

    /// Follows or creates the edge for one pattern word.
    fn child_mut_or_insert(&mut self, word: &str) -> &mut Node<T> {
        match word {
            "*" => self.star.get_or_insert_with(|| Box::new(Node::new())),
            "#" => self.hash.get_or_insert_with(|| Box::new(Node::new())),
            _ => self
                .literals
                .entry(Box::from(word))
                .or_insert_with(Node::new),
        }
    }

    /// Removes `value` bound with the remaining pattern `rest` below this node and prunes every
    /// child left empty. Recursion depth is the pattern's word count, which the AMQP short-string
    /// limit on binding keys (255 bytes) bounds to 256.
    fn remove<'p>(&mut self, mut rest: impl Iterator<Item = &'p str>, value: &T) -> bool
    where
        T: PartialEq,
    {
        let Some(word) = rest.next() else {
            let Some(pos) = self.values.iter().position(|v| v == value) else {
                return false;
            };
            self.values.swap_remove(pos);
            return true;
        };
        match word {
            "*" | "#" => {
                let slot = if word == "*" {
                    &mut self.star
                } else {
                    &mut self.hash
                };
                let Some(child) = slot.as_mut() else {
                    return false;
                };
                let removed = child.remove(rest, value);
                if child.is_empty() {
                    *slot = None;
                }
                removed
            }
            _ => {
                let Some(child) = self.literals.get_mut(word) else {
                    return false;
                };
                let removed = child.remove(rest, value);
                if child.is_empty() {
                    self.literals.remove(word);
                }
                removed
            }
        }
    }
}

/// Above this many active states, membership checks switch from a linear scan to a hash set:
/// typical routing keeps a handful of states, where scanning beats hashing.
const LINEAR_STATE_LIMIT: usize = 16;

/// The set of trie positions a partial routing key can have reached, deduplicated by node so
/// that overlapping wildcards (`#.#`, `*.#` vs `#.*`) never multiply the work or the reports.
struct StateSet<'a, T> {
    /// Each reached node, with whether it was entered through a `#` edge and may therefore
    /// absorb further words while staying where it is.
    states: Vec<(&'a Node<T>, bool)>,
    /// Node addresses in `states`, built only once the set grows past [`LINEAR_STATE_LIMIT`].
    index: Option<HashSet<*const Node<T>>>,
}

impl<'a, T> StateSet<'a, T> {
    fn new() -> Self {
        Self {
            states: Vec::new(),
            index: None,
        }
    }

    fn clear(&mut self) {
        self.states.clear();
        if let Some(index) = &mut self.index {
            index.clear();
        }
    }

    /// Records `node` unless already present; returns whether it was new.
    fn insert(&mut self, node: &'a Node<T>, via_hash: bool) -> bool {
        let ptr = std::ptr::from_ref(node);
        let present = match &self.index {
            Some(index) => index.contains(&ptr),
            None => self.states.iter().any(|(n, _)| std::ptr::eq(*n, node)),
        };
        if present {
            return false;
        }
        self.states.push((node, via_hash));
        match &mut self.index {
            Some(index) => {
                index.insert(ptr);
            }
            None if self.states.len() > LINEAR_STATE_LIMIT => {
                self.index = Some(
                    self.states
                        .iter()
                        .map(|(n, _)| std::ptr::from_ref(*n))
                        .collect(),
                );
            }
            None => {}
        }
        true
    }

    /// Adds `node` and everything reachable from it through `#` edges without consuming a word,
    /// since `#` may match zero words.
    fn insert_closure(&mut self, mut node: &'a Node<T>, mut via_hash: bool) {
        // A node already present had its closure added with it, so stop there.
        while self.insert(node, via_hash) {
            match &node.hash {
                Some(next) => {
                    node = next;
                    via_hash = true;
                }
                None => break,
            }
        }
    }
}

/// Bindings of a topic exchange, indexed by pattern words so routing does not scan every binding.
///
/// `T` is whatever identifies a binding's destination (a queue or exchange name, an id); it is
/// compared with `PartialEq` to keep each `(pattern, value)` pair unique.
#[derive(Debug)]
pub struct TopicTrie<T> {
    /// The node for the empty pattern; every pattern's path starts here.
    root: Node<T>,
    /// Number of `(pattern, value)` pairs stored, kept so `len` need not walk the trie.
    len: usize,
}

impl<T: Clone + PartialEq> TopicTrie<T> {
    /// An empty trie, for a freshly declared topic exchange.
    pub fn new() -> Self {
        Self {
            root: Node::new(),
            len: 0,
        }
    }

    /// Binds `value` with `pattern`. Returns false if that exact pair is already present, since
    /// AMQP makes a repeated `queue.bind` a no-op rather than a second route.
    pub fn insert(&mut self, pattern: &str, value: T) -> bool {
        let mut node = &mut self.root;
        for word in words(pattern) {
            node = node.child_mut_or_insert(word);
        }
        if node.values.contains(&value) {
            return false;
        }
        node.values.push(value);
        self.len += 1;
        true
    }

    /// Unbinds `value` from `pattern`. Returns false if the pair was absent, so the caller can
    /// tell an unbind of a missing binding apart. Branches left empty are pruned.
    pub fn remove(&mut self, pattern: &str, value: &T) -> bool {
        let removed = self.root.remove(words(pattern), value);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` once for every stored `(pattern, value)` pair whose pattern matches
    /// `routing_key`. A value bound under two matching patterns is reported once per pattern, so
    /// a caller routing to queues must deduplicate destinations.
    pub fn for_each_match(&self, routing_key: &str, mut f: impl FnMut(&T)) {
        let mut current = StateSet::new();
        let mut next = StateSet::new();
        current.insert_closure(&self.root, false);
        for word in words(routing_key) {
            next.clear();
            for &(node, via_hash) in &current.states {
                if via_hash {
                    // `#` absorbs this word too.
                    next.insert_closure(node, true);
                }
                if let Some(child) = node.literals.get(word) {
                    next.insert_closure(child, false);
                }
                if let Some(child) = &node.star {
                    next.insert_closure(child, false);
                }
            }
            std::mem::swap(&mut current, &mut next);
            if current.states.is_empty() {
                return;
            }
        }
        for (node, _) in &current.states {
            node.values.iter().for_each(&mut f);
        }
    }

    /// Number of `(pattern, value)` pairs bound, for statistics and exchange-in-use checks.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is bound, e.g. to decide whether an auto-delete exchange should go.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T: Clone + PartialEq> Default for TopicTrie<T> {
    /// Same as [`TopicTrie::new`], so the trie can sit in structs that derive `Default`.
    fn default() -> Self {
        Self::new()
    }
}

/// Whether one topic `pattern` matches `routing_key`, with the same semantics as [`TopicTrie`].
///
/// Kept independent of the trie (a dynamic program over word positions) so it can serve as the
/// reference in property tests and for one-off checks such as topic permissions. Runs in
/// O(pattern words × key words), whatever the wildcards.
#[must_use]
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    let pattern: Vec<&str> = words(pattern).collect();
    let key: Vec<&str> = words(routing_key).collect();
    // reachable[j]: the pattern words consumed so far can match exactly the first j key words.
    let mut reachable: Vec<bool> = std::iter::once(true)
        .chain(std::iter::repeat_n(false, key.len()))
        .collect();
    for word in pattern {
        let next: Vec<bool> = if word == "#" {
            // Zero or more words: every position at or after a reachable one is reachable.
            reachable
                .iter()
                .scan(false, |seen, &r| {
                    *seen |= r;
                    Some(*seen)
                })
                .collect()
        } else {
            // One word: position j + 1 is reachable if j was and key word j fits.
            std::iter::once(false)
                .chain(
                    reachable
                        .iter()
                        .zip(&key)
                        .map(|(&r, &k)| r && (word == "*" || word == k)),
                )
                .collect()
        };
        reachable = next;
    }
    reachable.last() == Some(&true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches(trie: &TopicTrie<String>, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        trie.for_each_match(key, |v| out.push(v.clone()));
        out.sort();
        out
    }

    fn sorted(v: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    /// The bindings of RabbitMQ's own topic-exchange test suite (t27 aliasing omitted: it tests
    /// binding arguments, which this trie does not see).
    const RABBIT_BINDINGS: &[(&str, &str)] = &[
        ("a.b.c", "t1"),
        ("a.*.c", "t2"),
        ("a.#.b", "t3"),
        ("a.b.b.c", "t4"),
        ("#", "t5"),
        ("#.#", "t6"),
        ("#.b", "t7"),
        ("*.*", "t8"),
        ("a.*", "t9"),
        ("*.b.c", "t10"),
        ("a.#", "t11"),
        ("a.#.#", "t12"),
        ("b.b.c", "t13"),
        ("a.b.b", "t14"),
        ("a.b", "t15"),
        ("b.c", "t16"),
        ("", "t17"),
        ("*.*.*", "t18"),
        ("vodka.martini", "t19"),
        ("a.b.c", "t20"),
        ("*.#", "t21"),
        ("#.*.#", "t22"),
        ("*.#.#", "t23"),
        ("#.#.#", "t24"),
        ("*", "t25"),
        ("#.b.#", "t26"),
    ];

    fn rabbit_trie() -> TopicTrie<String> {
        let mut trie = TopicTrie::new();
        for (pattern, q) in RABBIT_BINDINGS {
            assert!(trie.insert(pattern, q.to_string()));
        }
        trie
    }

    fn check_naive_agrees(trie_bindings: &[(&str, &str)], key: &str, expected: &[String]) {
        let mut naive: Vec<String> = trie_bindings
            .iter()
            .filter(|(p, _)| topic_matches(p, key))
            .map(|(_, q)| q.to_string())
            .collect();
        naive.sort();
        assert_eq!(&naive, expected, "naive matcher, key {key:?}");
    }

    #[test]
    fn rabbitmq_suite_before_removals() {
        let trie = rabbit_trie();
        let cases: &[(&str, &[&str])] = &[
            (
                "a.b.c",
                &[
                    "t1", "t2", "t5", "t6", "t10", "t11", "t12", "t18", "t20", "t21", "t22", "t23",
                    "t24", "t26",
                ],
            ),
            (
                "a.b",
                &[
                    "t3", "t5", "t6", "t7", "t8", "t9", "t11", "t12", "t15", "t21", "t22", "t23",
                    "t24", "t26",
                ],
            ),
            (
                "a.b.b",
                &[
                    "t3", "t5", "t6", "t7", "t11", "t12", "t14", "t18", "t21", "t22", "t23", "t24",
                    "t26",
                ],
            ),
            ("", &["t5", "t6", "t17", "t24"]),
            (
                "b.c.c",
                &["t5", "t6", "t18", "t21", "t22", "t23", "t24", "t26"],
            ),
            (
                "a.a.a.a.a",
                &["t5", "t6", "t11", "t12", "t21", "t22", "t23", "t24"],
            ),
            ("vodka.gin", &["t5", "t6", "t8", "t21", "t22", "t23", "t24"]),
            (
                "vodka.martini",
                &["t5", "t6", "t8", "t19", "t21", "t22", "t23", "t24"],
            ),
            (
                "b.b.c",
                &[
                    "t5", "t6", "t10", "t13", "t18", "t21", "t22", "t23", "t24", "t26",
                ],
            ),
            (
                "nothing.here.at.all",
                &["t5", "t6", "t21", "t22", "t23", "t24"],
            ),
            ("oneword", &["t5", "t6", "t21", "t22", "t23", "t24", "t25"]),
        ];
        for (key, expected) in cases {
            let expected = sorted(expected);
            assert_eq!(matches(&trie, key), expected, "key {key:?}");
            check_naive_agrees(RABBIT_BINDINGS, key, &expected);
        }
    }

    #[test]
    fn rabbitmq_suite_after_removals() {
        let mut trie = rabbit_trie();
        // RabbitMQ removes bindings 1, 5, 11, 19 and 21 (1-based).
        for n in [1usize, 5, 11, 19, 21] {
            let (pattern, q) = RABBIT_BINDINGS[n - 1];
            assert!(trie.remove(pattern, &q.to_string()));
        }
        assert_eq!(trie.len(), RABBIT_BINDINGS.len() - 5);
        let cases: &[(&str, &[&str])] = &[
            (
                "a.b.c",
                &[
                    "t2", "t6", "t10", "t12", "t18", "t20", "t22", "t23", "t24", "t26",
                ],
            ),
            (
                "a.b",
                &[
                    "t3", "t6", "t7", "t8", "t9", "t12", "t15", "t22", "t23", "t24", "t26",
                ],
            ),
            (
                "a.b.b",
                &[
                    "t3", "t6", "t7", "t12", "t14", "t18", "t22", "t23", "t24", "t26",
                ],
            ),
            ("", &["t6", "t17", "t24"]),
            ("b.c.c", &["t6", "t18", "t22", "t23", "t24", "t26"]),
            ("a.a.a.a.a", &["t6", "t12", "t22", "t23", "t24"]),
            ("vodka.gin", &["t6", "t8", "t22", "t23", "t24"]),
            ("vodka.martini", &["t6", "t8", "t22", "t23", "t24"]),
            (
                "b.b.c",
                &["t6", "t10", "t13", "t18", "t22", "t23", "t24", "t26"],
            ),
            ("nothing.here.at.all", &["t6", "t22", "t23", "t24"]),
            ("oneword", &["t6", "t22", "t23", "t24", "t25"]),
        ];
        for (key, expected) in cases {
            assert_eq!(matches(&trie, key), sorted(expected), "key {key:?}");
        }
    }

    #[test]
    fn empty_key_and_empty_words() {
        // "" is zero words: only "", "#" and chains of "#" match it.
        assert!(topic_matches("", ""));
        assert!(topic_matches("#", ""));
        assert!(topic_matches("#.#", ""));
        assert!(!topic_matches("*", ""));
        assert!(!topic_matches("", "a"));
        assert!(!topic_matches("a", ""));
        // Empty words between dots are literal words.
        assert!(topic_matches("a..b", "a..b"));
        assert!(topic_matches("a.*.b", "a..b"));
        assert!(topic_matches("a.#.b", "a..b"));
        assert!(!topic_matches("a.b", "a..b"));
        assert!(topic_matches("*", "*"));
        assert!(topic_matches("*.*", "."));
        assert!(!topic_matches("*", "."));
        assert!(topic_matches(".", "."));
        assert!(topic_matches("a.", "a."));
        assert!(!topic_matches("a", "a."));
        assert!(topic_matches("a.#", "a."));
        assert!(topic_matches("a.#", "a"));
        assert!(topic_matches("#.a", "a"));
        assert!(topic_matches("#.#", "a.b.c"));

        let mut trie = TopicTrie::new();
        for p in ["", "#", "#.#", "*", "a..b", "a.*.b", "*.*", "."] {
            trie.insert(p, p.to_string());
        }
        assert_eq!(matches(&trie, ""), sorted(&["", "#", "#.#"]));
        assert_eq!(
            matches(&trie, "a..b"),
            sorted(&["#", "#.#", "a..b", "a.*.b"])
        );
        assert_eq!(matches(&trie, "."), sorted(&["#", "#.#", "*.*", "."]));
        assert_eq!(matches(&trie, "x"), sorted(&["#", "#.#", "*"]));
    }

    #[test]
    fn wildcard_characters_in_keys_and_partial_words_are_literals() {
        let mut trie = TopicTrie::new();
        trie.insert("a*", "a-star".to_string());
        trie.insert("#b", "hash-b".to_string());
        trie.insert("a.*", "a.any".to_string());
        assert_eq!(matches(&trie, "a*"), sorted(&["a-star"]));
        assert_eq!(matches(&trie, "ab"), Vec::<String>::new());
        assert_eq!(matches(&trie, "#b"), sorted(&["hash-b"]));
        assert_eq!(matches(&trie, "xb"), Vec::<String>::new());
        // A literal "*" word in a key is matched by the wildcard, and reported once.
        assert_eq!(matches(&trie, "a.*"), sorted(&["a.any"]));
        assert!(!topic_matches("a*", "ab"));
        assert!(topic_matches("a.*", "a.#"));
    }

    #[test]
    fn insert_and_remove_bookkeeping() {
        let mut trie: TopicTrie<u32> = TopicTrie::default();
        assert!(trie.is_empty());
        assert!(trie.insert("a.b", 1));
        assert!(!trie.insert("a.b", 1));
        assert!(trie.insert("a.b", 2));
        assert!(trie.insert("a.#", 1));
        assert_eq!(trie.len(), 3);
        assert!(!trie.remove("a.b", &3));
        assert!(!trie.remove("a.c", &1));
        assert!(!trie.remove("a.*", &1));
        assert!(!trie.remove("a", &1));
        assert!(!trie.remove("a.b.c", &1));
        assert!(trie.remove("a.b", &1));
        assert!(!trie.remove("a.b", &1));
        assert_eq!(trie.len(), 2);
        assert!(trie.remove("a.b", &2));
        assert!(trie.remove("a.#", &1));
        assert!(trie.is_empty());
        // Pruning leaves no dangling branches behind.
        assert!(trie.root.is_empty());
    }

    #[test]
    fn pruning_keeps_shared_prefixes() {
        let mut trie = TopicTrie::new();
        trie.insert("a.b.c", 1);
        trie.insert("a", 2);
        trie.insert("a.*.#", 3);
        assert!(trie.remove("a.b.c", &1));
        let a = &trie.root.literals["a"];
        assert!(a.literals.is_empty());
        assert!(a.star.is_some());
        assert!(trie.remove("a.*.#", &3));
        assert!(trie.root.literals["a"].star.is_none());
        assert_eq!(trie.root.literals["a"].values, vec![2]);
        assert!(trie.remove("a", &2));
        assert!(trie.root.is_empty());
    }

    #[test]
    fn same_value_under_two_patterns_is_reported_per_pattern() {
        let mut trie = TopicTrie::new();
        trie.insert("a.*", "q");
        trie.insert("#", "q");
        let mut count = 0;
        trie.for_each_match("a.b", |_| count += 1);
        assert_eq!(count, 2);
    }

    #[test]
    fn repeated_hashes_do_not_blow_up() {
        let pattern = vec!["#"; 60].join(".") + ".z";
        let key = vec!["a"; 200].join(".");
        let mut trie = TopicTrie::new();
        trie.insert(&pattern, 1);
        trie.insert(&vec!["#"; 60].join("."), 2);
        trie.insert(&vec!["#.*"; 30].join("."), 3);
        let start = std::time::Instant::now();
        let mut hits = Vec::new();
        trie.for_each_match(&key, |v| hits.push(*v));
        hits.sort();
        assert_eq!(hits, vec![2, 3]);
        assert!(!topic_matches(&pattern, &key));
        assert!(topic_matches(&pattern, &(key.clone() + ".z")));
        // Exponential backtracking would take astronomically long here.
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn many_states_switch_to_hashed_dedup() {
        // Enough distinct "#.<word>.#" branches that the state set outgrows the linear scan.
        let mut trie = TopicTrie::new();
        for i in 0..40 {
            trie.insert(&format!("#.w{i}.#"), i);
            trie.insert(&format!("*.#.w{i}"), 100 + i);
        }
        let key: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
        let key = key.join(".");
        let mut hits = Vec::new();
        trie.for_each_match(&key, |v| hits.push(*v));
        hits.sort();
        let mut expected: Vec<i32> = (0..40).collect();
        expected.push(139);
        assert_eq!(hits, expected);
    }

    fn word() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "c", "", "*", "#"])
    }

    fn key_word() -> impl Strategy<Value = &'static str> {
        // Keys may contain literal "*" and "#" words too, but mostly ordinary ones.
        prop::sample::select(vec!["a", "b", "c", "", "a", "b", "*", "#"])
    }

    fn topic(w: impl Strategy<Value = &'static str>) -> impl Strategy<Value = String> {
        prop::collection::vec(w, 0..6).prop_map(|ws| ws.join("."))
    }

    fn naive_hits(bindings: &[(String, u8)], key: &str) -> Vec<u8> {
        let mut v: Vec<u8> = bindings
            .iter()
            .filter(|(p, _)| topic_matches(p, key))
            .map(|(_, v)| *v)
            .collect();
        v.sort();
        v
    }

    fn trie_hits(trie: &TopicTrie<u8>, key: &str) -> Vec<u8> {
        let mut v = Vec::new();
        trie.for_each_match(key, |x| v.push(*x));
        v.sort();
        v
    }

    /// Reference for the naive matcher itself: plain backtracking, exponential but obviously
    /// right, only fit for the tiny inputs proptest generates.
    fn backtrack(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|i| backtrack(rest, &k[i..])),
            Some((w, rest)) => match k.split_first() {
                Some((kw, krest)) => (*w == "*" || w == kw) && backtrack(rest, krest),
                None => false,
            },
        }
    }

    proptest! {
        #[test]
        fn naive_matches_backtracking(pattern in topic(word()), key in topic(key_word())) {
            let p: Vec<&str> = words(&pattern).collect();
            let k: Vec<&str> = words(&key).collect();
            prop_assert_eq!(topic_matches(&pattern, &key), backtrack(&p, &k));
        }

        #[test]
        fn trie_agrees_with_naive(
            patterns in prop::collection::vec((topic(word()), 0u8..4), 0..30),
            keys in prop::collection::vec(topic(key_word()), 1..20),
            removals in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        ) {
            let mut trie = TopicTrie::new();
            let mut bindings: Vec<(String, u8)> = Vec::new();
            for (p, v) in &patterns {
                let fresh = !bindings.contains(&(p.clone(), *v));
                prop_assert_eq!(trie.insert(p, *v), fresh);
                if fresh {
                    bindings.push((p.clone(), *v));
                }
            }
            prop_assert_eq!(trie.len(), bindings.len());
            for key in &keys {
                prop_assert_eq!(trie_hits(&trie, key), naive_hits(&bindings, key), "key {:?}", key);
            }
            for idx in &removals {
                if bindings.is_empty() {
                    break;
                }
                let (p, v) = bindings.swap_remove(idx.index(bindings.len()));
                prop_assert!(trie.remove(&p, &v));
                prop_assert!(!trie.remove(&p, &v));
                prop_assert_eq!(trie.len(), bindings.len());
                for key in &keys {
                    prop_assert_eq!(trie_hits(&trie, key), naive_hits(&bindings, key), "key {:?}", key);
                }
            }
            for (p, v) in std::mem::take(&mut bindings) {
                prop_assert!(trie.remove(&p, &v));
            }
            prop_assert!(trie.is_empty());
            prop_assert!(trie.root.is_empty());
        }
    }
}
