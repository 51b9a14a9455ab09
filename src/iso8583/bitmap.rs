//! Bitmaps: which data elements a message carries.
//!
//! ISO 8583 puts a 64-bit *primary bitmap* after the MTI: bit 1 (the most significant bit of the
//! first byte) stands for DE1, bit 64 for DE64. DE1 is itself a bitmap: when bit 1 is set, a
//! *secondary bitmap* for DE65–128 follows. In this dialect each bitmap travels as 16 upper-case hex
//! characters (read in either case, written in upper case), so `0200` + `7234054128C28805` + … is a message whose bit 2 (DE2), 3, 4, 7,
//! … are set.
//!
//! [`Bitmap`] is the set of present DEs as two `u64` words; `words[0]` bit 63 is DE1. The codec
//! keeps one per message, never sets bit 1 itself, and derives the secondary bitmap when encoding.

/// A set of data-element numbers 1–128.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Bitmap {
    words: [u64; 2],
}

impl Bitmap {
    /// The empty set.
    pub const fn new() -> Self {
        Bitmap { words: [0, 0] }
    }

    /// From the primary and secondary words as they travel (bit 63 of `primary` is DE1).
    pub const fn from_words(primary: u64, secondary: u64) -> Self {
        Bitmap { words: [primary, secondary] }
    }

    /// The primary (DE1–64) and secondary (DE65–128) words.
    pub const fn words(&self) -> (u64, u64) {
        (self.words[0], self.words[1])
    }

    /// The word index and mask of `de`, or None outside 1–128.
    #[inline]
    fn locate(de: u8) -> Option<(usize, u64)> {
        if de == 0 || de > 128 {
            return None;
        }
        let i = de - 1;
        Some((usize::from(i / 64), 1u64 << (63 - u32::from(i % 64))))
    }

    /// True when `de` is in the set (false for numbers outside 1–128).
    #[inline]
    pub fn contains(&self, de: u8) -> bool {
        Self::locate(de).and_then(|(w, m)| self.words.get(w).map(|word| word & m != 0)).unwrap_or(false)
    }

    /// Adds `de`; numbers outside 1–128 are ignored.
    #[inline]
    pub fn insert(&mut self, de: u8) {
        if let Some((w, m)) = Self::locate(de)
            && let Some(word) = self.words.get_mut(w)
        {
            *word |= m;
        }
    }

    /// Removes `de`.
    #[inline]
    pub fn remove(&mut self, de: u8) {
        if let Some((w, m)) = Self::locate(de)
            && let Some(word) = self.words.get_mut(w)
        {
            *word &= !m;
        }
    }

    /// True when no DE is present.
    pub const fn is_empty(&self) -> bool {
        self.words[0] == 0 && self.words[1] == 0
    }

    /// True when any of DE65–128 is present, i.e. a secondary bitmap must be sent.
    pub const fn needs_secondary(&self) -> bool {
        self.words[1] != 0
    }

    /// Number of DEs present.
    pub const fn len(&self) -> usize {
        (self.words[0].count_ones() + self.words[1].count_ones()) as usize
    }

    /// The DE numbers present, in ascending order (the order they travel in).
    pub fn iter(&self) -> Iter {
        Iter { words: self.words, base: 0 }
    }
}

impl std::fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Iterator over the DE numbers of a [`Bitmap`], ascending.
#[derive(Clone, Debug)]
pub struct Iter {
    words: [u64; 2],
    base: u8,
}

impl Iterator for Iter {
    type Item = u8;

    #[inline]
    fn next(&mut self) -> Option<u8> {
        loop {
            let word = if self.base == 0 { &mut self.words[0] } else { &mut self.words[1] };
            if *word != 0 {
                let lz = word.leading_zeros(); // 0..=63
                *word &= !(1u64 << (63 - lz));
                // lz < 64 and base ∈ {0, 64}, so this is 1..=128.
                return Some(self.base + lz as u8 + 1);
            }
            if self.base == 0 {
                self.base = 64;
            } else {
                return None;
            }
        }
    }
}

/// Parses one bitmap: exactly 16 hex characters. Answers are written in upper case; requests are
/// read in either case (some terminal libraries write lower case). None if `text` is anything else.
#[inline]
pub fn parse_hex(text: &[u8]) -> Option<u64> {
    if text.len() != 16 {
        return None;
    }
    let mut v = 0u64;
    for &c in text {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

/// Appends `word` as 16 upper-case hex characters.
#[inline]
pub fn write_hex(word: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&hex_word(word));
}

/// `word` as 16 upper-case hex characters.
#[inline]
pub fn hex_word(word: u64) -> [u8; 16] {
    let mut buf = [0u8; 16];
    for (i, slot) in buf.iter_mut().enumerate() {
        let nibble = (word >> (60 - 4 * i)) & 0xF;
        *slot = HEX_UPPER[nibble as usize];
    }
    buf
}

pub(crate) const HEX_UPPER: [u8; 16] = *b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_numbering() {
        // DE2, DE3, DE4 → 0111 0000 … = 7000000000000000.
        let mut b = Bitmap::new();
        for de in [2, 3, 4] {
            b.insert(de);
        }
        assert_eq!(b.words(), (0x7000_0000_0000_0000, 0));
        b.insert(64);
        b.insert(65);
        b.insert(128);
        assert_eq!(b.words(), (0x7000_0000_0000_0001, 0x8000_0000_0000_0001));
        assert!(b.needs_secondary());
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![2, 3, 4, 64, 65, 128]);
        assert_eq!(b.len(), 6);
        b.remove(65);
        b.remove(128);
        assert!(!b.needs_secondary());
        assert!(b.contains(64) && !b.contains(65) && !b.contains(0) && !b.contains(200));
        b.insert(0);
        b.insert(129);
        assert_eq!(b.len(), 4);
    }

    #[test]
    fn hex() {
        assert_eq!(parse_hex(b"7234054128C28805"), Some(0x7234_0541_28C2_8805));
        assert_eq!(parse_hex(b"7234054128c28805"), Some(0x7234_0541_28C2_8805), "lower case is read too");
        assert_eq!(parse_hex(b"7234054128C2880"), None);
        assert_eq!(parse_hex(b"7234054128C2880G"), None);
        assert_eq!(parse_hex(b" 234054128C28805"), None);
        assert_eq!(&hex_word(0x7234_0541_28C2_8805), b"7234054128C28805");
        assert_eq!(&hex_word(0), b"0000000000000000");
        assert_eq!(&hex_word(u64::MAX), b"FFFFFFFFFFFFFFFF");
    }
}
