//! Which of a gateway's sessions carries the next connection.
//!
//! Least active streams first; among equals, round-robin from where the last pick left off,
//! so sequential connections alternate between clients and a busy client gets fewer new
//! ones. A session that goes away is removed at once, so the next pick skips it (F19).

#[derive(Debug)]
pub struct SessionSet<T> {
    entries: Vec<(String, T)>,
    cursor: usize,
}

impl<T> Default for SessionSet<T> {
    fn default() -> Self {
        SessionSet {
            entries: Vec::new(),
            cursor: 0,
        }
    }
}

impl<T> SessionSet<T> {
    pub fn insert(&mut self, id: String, value: T) {
        self.remove(&id);
        self.entries.push((id, value));
    }

    pub fn remove(&mut self, id: &str) -> Option<T> {
        let i = self.entries.iter().position(|(k, _)| k == id)?;
        Some(self.entries.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.entries.drain(..).map(|(_, v)| v)
    }

    /// Picks the least-loaded eligible session, rotating among equals; among equals a
    /// `preferred` one (on the caller's own thread) wins.
    pub fn pick(
        &mut self,
        eligible: impl Fn(&T) -> bool,
        load: impl Fn(&T) -> usize,
        preferred: impl Fn(&T) -> bool,
    ) -> Option<&T> {
        let n = self.entries.len();
        let mut best: Option<(usize, usize, bool)> = None;
        for step in 0..n {
            let i = (self.cursor + step) % n;
            let v = &self.entries[i].1;
            if !eligible(v) {
                continue;
            }
            let (l, p) = (load(v), preferred(v));
            let better = match best {
                None => true,
                Some((_, bl, bp)) => l < bl || (l == bl && p && !bp),
            };
            if better {
                best = Some((i, l, p));
            }
        }
        let best = best.map(|(i, l, _)| (i, l));
        let (i, _) = best?;
        self.cursor = (i + 1) % n;
        Some(&self.entries[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_load_alternates() {
        let mut s = SessionSet::default();
        s.insert("a".into(), ("a", 0));
        s.insert("b".into(), ("b", 0));
        let picks: Vec<_> = (0..4)
            .map(|_| s.pick(|_| true, |v| v.1, |_| false).unwrap().0)
            .collect();
        assert_eq!(picks, vec!["a", "b", "a", "b"]);
    }

    #[test]
    fn least_loaded_wins() {
        let mut s = SessionSet::default();
        s.insert("a".into(), ("a", 5));
        s.insert("b".into(), ("b", 1));
        s.insert("c".into(), ("c", 3));
        assert_eq!(s.pick(|_| true, |v| v.1, |_| false).unwrap().0, "b");
    }

    #[test]
    fn among_equals_the_preferred_one_wins() {
        let mut s = SessionSet::default();
        s.insert("a".into(), ("a", 1));
        s.insert("b".into(), ("b", 1));
        s.insert("c".into(), ("c", 0));
        for _ in 0..3 {
            assert_eq!(
                s.pick(|_| true, |v| v.1, |v| v.0 == "b").unwrap().0,
                "c",
                "load first"
            );
        }
        s.insert("c".into(), ("c", 1));
        for _ in 0..3 {
            assert_eq!(s.pick(|_| true, |v| v.1, |v| v.0 == "b").unwrap().0, "b");
        }
    }

    #[test]
    fn removed_and_ineligible_sessions_are_skipped() {
        let mut s = SessionSet::default();
        s.insert("a".into(), ("a", 0));
        s.insert("b".into(), ("b", 0));
        s.remove("a");
        assert_eq!(s.pick(|_| true, |v| v.1, |_| false).unwrap().0, "b");
        assert!(s.pick(|v| v.0 != "b", |v| v.1, |_| false).is_none());
        s.remove("b");
        assert!(s.pick(|_| true, |v| v.1, |_| false).is_none());
    }
}
