//! A map from recipient keys to small values that holds a million entries in little more than
//! their own size.
//!
//! Two structures keep a value per person for the length of a run: the send log's replay (where
//! each person stands) and the list's duplicate check (who was seen already). A hash map of a
//! million 16-byte keys rounds up to two million buckets and costs three times the data; this
//! map keeps a sorted array (exactly the entries) and a bounded hash map of recent changes,
//! merged into the array whenever it fills. Keys are hashes, spread evenly, so an index of where
//! each value of their first 16 bits starts in the array narrows a lookup to a dozen entries.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::address::RecipientKey;

/// Changes held in the hash map before they are merged into the sorted array: large enough to
/// make merges rare (each moves the whole array), small enough to cost a few megabytes.
/// (Tests use a small one, so that their merges happen within a few hundred keys.)
const RECENT: usize = if cfg!(test) { 256 } else { 1 << 16 };

/// A compact map from [`RecipientKey`] to `V`.
#[derive(Debug, Clone, Default)]
pub struct KeyMap<V> {
    /// Sorted by key, one entry a key; older than anything in `recent`.
    sorted: Vec<(RecipientKey, V)>,
    recent: HashMap<RecipientKey, V, BuildHasherDefault<KeyHasher>>,
    /// Keys in `recent` that are not in `sorted`.
    fresh: usize,
    /// `starts[p]`: where keys whose first 16 bits are `p` begin in `sorted`; one more slot
    /// for the end. Empty while `sorted` is.
    starts: Vec<u32>,
}

impl<V: Copy> KeyMap<V> {
    pub fn new() -> Self {
        KeyMap {
            sorted: Vec::new(),
            recent: HashMap::default(),
            fresh: 0,
            starts: Vec::new(),
        }
    }

    pub fn get(&self, key: &RecipientKey) -> Option<V> {
        self.recent
            .get(key)
            .copied()
            .or_else(|| self.in_sorted(key).ok().map(|i| self.sorted[i].1))
    }

    /// The value of `key`, made `default` first when there is none, to update in place.
    pub fn entry_or(&mut self, key: RecipientKey, default: V) -> &mut V {
        if !self.recent.contains_key(&key) {
            if self.recent.len() >= RECENT {
                self.merge();
            }
            let value = match self.in_sorted(&key) {
                Ok(i) => self.sorted[i].1,
                Err(_) => {
                    self.fresh += 1;
                    default
                }
            };
            self.recent.insert(key, value);
        }
        self.recent.get_mut(&key).expect("inserted above")
    }

    /// Adds `key` with `value`; false (and no change) when the key is there already.
    pub fn insert(&mut self, key: RecipientKey, value: V) -> bool {
        // One look in the sorted array, not two (`get`, then `entry_or`): with a million keys
        // each look is a miss of the processor's caches, and a replay or a list's duplicate
        // check makes one a person.
        if self.recent.contains_key(&key) {
            return false;
        }
        if self.in_sorted(&key).is_ok() {
            return false;
        }
        if self.recent.len() >= RECENT {
            self.merge();
        }
        self.fresh += 1;
        self.recent.insert(key, value);
        true
    }

    pub fn len(&self) -> usize {
        self.sorted.len() + self.fresh
    }

    /// Every entry of a compacted map, in key order (recent changes not included).
    pub fn iter(&self) -> impl Iterator<Item = (RecipientKey, V)> + '_ {
        debug_assert!(self.recent.is_empty(), "iter() is for compacted maps");
        self.sorted.iter().copied()
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = V> + '_ {
        let older = self
            .sorted
            .iter()
            .filter(|(key, _)| !self.recent.contains_key(key));
        older
            .map(|(_, value)| *value)
            .chain(self.recent.values().copied())
    }

    /// Adds the keys of `items` not there already, with their values (the first of a key's
    /// repeats wins), as [`KeyMap::insert`] would one by one, but in one pass in key order:
    /// filling a map of a million from a list read whole, the looks one by one into the sorted
    /// array (each a miss of the processor's caches) were most of the time.
    pub fn extend_new(&mut self, mut items: Vec<(RecipientKey, V)>) {
        items.retain(|(key, _)| !self.recent.contains_key(key));
        // Stable: of a key's repeats, the first stays first and is the one kept.
        items.sort_by_key(|&(key, _)| key);
        items.dedup_by_key(|(key, _)| *key);
        let mut old = self.sorted.iter().map(|(key, _)| *key).peekable();
        items.retain(|(key, _)| {
            while old.next_if(|old| old < key).is_some() {}
            old.peek() != Some(key)
        });
        let fresh = items.len();
        self.merge_run(&items, fresh);
    }

    /// Where `key` is in `sorted` (`Ok`), or would go (`Err`).
    /// Moves everything into the sorted array and frees the map of recent changes: for a map
    /// that will only be read from now on.
    pub fn compact(&mut self) {
        self.merge();
        self.recent = HashMap::default();
    }

    /// Takes `key` out if it came in since the last merge (a hash map removal); `None` when it
    /// is not there or already merged into the sorted array.
    pub fn take_fresh(&mut self, key: &RecipientKey) -> Option<V> {
        if self.in_sorted(key).is_ok() {
            return None;
        }
        let value = self.recent.remove(key)?;
        self.fresh -= 1;
        Some(value)
    }

    /// Splits the map in two: the entries `left` takes (with the value it makes), and the rest
    /// (with the value `right` makes). The original is gone once split.
    pub fn split<L: Copy, R: Copy>(
        mut self,
        left: impl Fn(&V) -> Option<L>,
        right: impl Fn(V) -> R,
    ) -> (KeyMap<L>, KeyMap<R>) {
        self.compact();
        // Sized exactly: a doubling vector would briefly hold twice what it needs.
        let going_left = self
            .sorted
            .iter()
            .filter(|(_, v)| left(v).is_some())
            .count();
        let mut lefts = Vec::with_capacity(going_left);
        let mut rights = Vec::with_capacity(self.sorted.len() - going_left);
        for (key, value) in self.sorted {
            match left(&value) {
                Some(l) => lefts.push((key, l)),
                None => rights.push((key, right(value))),
            }
        }
        (KeyMap::from_sorted(lefts), KeyMap::from_sorted(rights))
    }

    /// A map of `sorted`, which must be sorted by key without repeats.
    fn from_sorted(mut sorted: Vec<(RecipientKey, V)>) -> Self {
        sorted.shrink_to_fit();
        let mut map = KeyMap {
            sorted,
            ..KeyMap::new()
        };
        map.index();
        map
    }

    fn in_sorted(&self, key: &RecipientKey) -> Result<usize, usize> {
        if self.starts.is_empty() {
            return Err(0);
        }
        let prefix = prefix(key);
        let (start, end) = (
            self.starts[prefix] as usize,
            self.starts[prefix + 1] as usize,
        );
        // A dozen entries, a few cache lines side by side: read in a row, they arrive
        // together, where a binary search waits for one miss before it makes the next (it
        // was a third of `status`'s time over a million people). Each key compared as one
        // 128-bit number, big-endian: the bytes' order, in one comparison.
        let wanted = u128::from_be_bytes(key.0);
        let bucket = &self.sorted[start..end];
        if bucket.len() > 64 {
            // Not with hashes for keys, but a linear read must never be a long one.
            return bucket
                .binary_search_by_key(&wanted, |(k, _)| u128::from_be_bytes(k.0))
                .map(|i| start + i)
                .map_err(|i| start + i);
        }
        let at = bucket
            .iter()
            .position(|(k, _)| u128::from_be_bytes(k.0) >= wanted)
            .unwrap_or(bucket.len());
        match bucket.get(at) {
            Some((k, _)) if k == key => Ok(start + at),
            _ => Err(start + at),
        }
    }

    /// Moves the recent changes into the sorted array, merging the two sorted runs from the
    /// back, in place: the array grows by exactly what it gains and is never copied whole.
    fn merge(&mut self) {
        let mut recent: Vec<(RecipientKey, V)> = self.recent.drain().collect();
        recent.sort_unstable_by_key(|&(key, _)| key);
        let fresh = std::mem::take(&mut self.fresh);
        self.merge_run(&recent, fresh);
    }

    /// Merges `recent` (sorted, each key once, `fresh` of them not in `sorted`) into the
    /// sorted array: a recent value replaces an old one of the same key.
    fn merge_run(&mut self, recent: &[(RecipientKey, V)], fresh: usize) {
        let old_len = self.sorted.len();
        let new_len = old_len + fresh;
        self.sorted.reserve_exact(new_len - old_len);
        if let Some(&filler) = recent.first() {
            self.sorted.resize(new_len, filler);
        }
        let (mut old, mut new, mut slot) = (old_len, recent.len(), new_len);
        while new > 0 {
            slot -= 1;
            let (key, value) = recent[new - 1];
            match old.checked_sub(1).map(|i| self.sorted[i].0.cmp(&key)) {
                Some(std::cmp::Ordering::Greater) => {
                    self.sorted[slot] = self.sorted[old - 1];
                    old -= 1;
                }
                // The same key: the recent value replaces the old one.
                Some(std::cmp::Ordering::Equal) => {
                    self.sorted[slot] = (key, value);
                    old -= 1;
                    new -= 1;
                }
                _ => {
                    self.sorted[slot] = (key, value);
                    new -= 1;
                }
            }
        }
        debug_assert_eq!(old, slot, "every key accounted for");
        self.index();
    }

    /// Rebuilds `starts` from `sorted`.
    fn index(&mut self) {
        self.starts.clear();
        self.starts.resize(PREFIXES + 1, 0);
        for (key, _) in &self.sorted {
            self.starts[prefix(key) + 1] += 1;
        }
        for p in 1..=PREFIXES {
            self.starts[p] += self.starts[p - 1];
        }
    }
}

/// Keys are SHA-256 digests already: their first eight bytes are as good a hash as any, and
/// cost nothing to compute (the default hasher was a tenth of a replay's time).
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(first);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Values of a key's first 16 bits.
const PREFIXES: usize = 1 << 16;

fn prefix(key: &RecipientKey) -> usize {
    usize::from(u16::from_be_bytes([key.0[0], key.0[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> RecipientKey {
        RecipientKey::of(&format!("p{n}@example.com"))
    }

    #[test]
    fn behaves_like_a_hash_map_across_merges() {
        let mut map = KeyMap::new();
        let mut reference = HashMap::new();
        // Enough keys for several merges, with updates of old keys between them.
        let n = (RECENT * 3 + 17) as u32;
        for i in 0..n {
            let value = map.entry_or(key(i), 0u32);
            *value += i;
            *reference.entry(key(i)).or_insert(0u32) += i;
            if i % 3 == 0 {
                let old = key(i / 2);
                *map.entry_or(old, 0) += 1;
                *reference.entry(old).or_insert(0) += 1;
            }
        }
        assert_eq!(map.len(), reference.len());
        for (k, v) in &reference {
            assert_eq!(map.get(k), Some(*v));
        }
        assert_eq!(map.get(&key(n + 1)), None);
        let mut values: Vec<u32> = map.values().collect();
        let mut expected: Vec<u32> = reference.values().copied().collect();
        values.sort_unstable();
        expected.sort_unstable();
        assert_eq!(values, expected);
        assert!(map.sorted.windows(2).all(|w| w[0].0 < w[1].0));
        map.compact();
        assert_eq!((map.recent.capacity(), map.len()), (0, reference.len()));
        for (k, v) in &reference {
            assert_eq!(map.get(k), Some(*v));
        }
    }

    #[test]
    fn fresh_keys_can_be_taken_out_merged_ones_cannot() {
        let mut map = KeyMap::new();
        for i in 0..(RECENT as u32 + 10) {
            map.insert(key(i), i);
        }
        // The first RECENT went into the sorted array at the merge; the last ten are fresh.
        assert_eq!(map.take_fresh(&key(0)), None);
        assert_eq!(
            map.take_fresh(&key(RECENT as u32 + 3)),
            Some(RECENT as u32 + 3)
        );
        assert_eq!(map.get(&key(RECENT as u32 + 3)), None);
        assert_eq!(map.len(), RECENT + 9);
        let (even, odd) = map.split(|v| (v % 2 == 0).then_some(*v), |v| v);
        assert_eq!(
            (even.len(), odd.len()),
            ((RECENT + 9) / 2 + 1, (RECENT + 9) / 2)
        );
        assert_eq!((even.get(&key(4)), odd.get(&key(5))), (Some(4), Some(5)));
    }

    #[test]
    fn extend_new_adds_what_insert_would() {
        let mut map = KeyMap::new();
        let mut reference = KeyMap::new();
        // Some keys merged, some recent, then a batch that repeats both and itself.
        for i in 0..(RECENT as u32 + 10) {
            assert!(map.insert(key(i * 2), i));
            reference.insert(key(i * 2), i);
        }
        let batch: Vec<(RecipientKey, u32)> = (0..(RECENT as u32 * 2 + 20))
            .chain([7, 7 + 1_000_000])
            .map(|i| (key(i % 1_000_000), i + 1_000_000))
            .collect();
        for &(k, v) in &batch {
            reference.insert(k, v);
        }
        map.extend_new(batch);
        assert_eq!(map.len(), reference.len());
        assert!(map.sorted.windows(2).all(|w| w[0].0 < w[1].0));
        for i in 0..(RECENT as u32 * 3) {
            assert_eq!(map.get(&key(i)), reference.get(&key(i)), "key {i}");
        }
        assert_eq!(
            map.get(&key(7)),
            Some(1_000_007),
            "the first of repeats wins"
        );
        assert_eq!(
            map.get(&key(4)),
            Some(2),
            "a key there already keeps its value"
        );
    }

    #[test]
    fn insert_reports_keys_already_there() {
        let mut seen = KeyMap::new();
        assert!(seen.insert(key(1), ()));
        assert!(!seen.insert(key(1), ()));
        assert!(seen.insert(key(2), ()));
        assert_eq!(seen.len(), 2);
    }
}
