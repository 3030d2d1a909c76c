//! Packed weights whose first value starts a cache line.
//!
//! The kernels load packed filters a vector at a time, at multiples of 64
//! bytes from the start of the packing; a `Vec<f32>` starts wherever the
//! allocator puts it (16-byte boundaries from glibc), and then every
//! AVX-512 load of a filter vector spans two cache lines.

use std::fmt;
use std::ops::Deref;

/// Bytes in a cache line, and in an AVX-512 vector.
const LINE: usize = 64;

/// f32 values, the first on a [`LINE`]-byte boundary, read as a slice.
pub struct Aligned {
    /// The values after `start` leading ones that only align them.
    buf: Vec<f32>,
    start: usize,
}

impl Aligned {
    /// `values`, moved to a line boundary if they do not start on one.
    pub fn new(values: Vec<f32>) -> Aligned {
        if values.as_ptr().align_offset(LINE) == 0 {
            return Aligned {
                buf: values,
                start: 0,
            };
        }
        let pad = LINE / size_of::<f32>() - 1;
        let mut buf = Vec::<f32>::with_capacity(values.len() + pad);
        // `align_offset` counts f32s; the buffer does not move again, since
        // nothing is pushed beyond its capacity.
        let start = buf.as_ptr().align_offset(LINE).min(pad);
        buf.resize(start, 0.0);
        buf.extend_from_slice(&values);
        Aligned { buf, start }
    }
}

impl Deref for Aligned {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.buf[self.start..]
    }
}

impl Clone for Aligned {
    fn clone(&self) -> Aligned {
        Aligned::new(self.to_vec())
    }
}

impl PartialEq for Aligned {
    fn eq(&self, other: &Aligned) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Aligned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_start_a_line_and_keep_their_order() {
        for len in [0, 1, 15, 16, 17, 1000, 40_000] {
            let values: Vec<f32> = (0..len).map(|i| i as f32).collect();
            let aligned = Aligned::new(values.clone());
            assert_eq!(&*aligned, &values[..]);
            assert_eq!(aligned.as_ptr() as usize % LINE, 0, "{len} values");
            let copy = aligned.clone();
            assert_eq!(copy, aligned);
            assert_eq!(copy.as_ptr() as usize % LINE, 0);
        }
    }
}
