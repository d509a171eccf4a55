//! Decoded output: rows of values that share one timestamp and one data format, stored flat in
//! caller-owned buffers that are cleared and reused, never reallocated per frame.

/// One decoded row: the values of one data format at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowHeader {
    /// Nanoseconds since the UNIX epoch: the capture or receive time of the frame.
    pub time_ns: u64,
    /// Dense index of the data format (ordered parameter list) the values belong to.
    pub format: u32,
    /// Index of the row's first value in [`RowBatch::values`].
    first: u32,
}

/// A batch of decoded rows, flat: headers in one vector, values in another.
///
/// Invariant: the values of row `k` are `values[headers[k].first .. headers[k+1].first]` (or
/// to the end for the last row), so a row's width is implied and never stored twice.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowBatch {
    headers: Vec<RowHeader>,
    values: Vec<f64>,
}

impl RowBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `rows` rows of about `width` values.
    pub fn with_capacity(rows: usize, width: usize) -> Self {
        Self {
            headers: Vec::with_capacity(rows),
            values: Vec::with_capacity(rows * width),
        }
    }

    /// Starts a row; push its values with [`RowBatch::push_value`].
    #[inline]
    pub fn begin_row(&mut self, time_ns: u64, format: u32) {
        let first = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.headers.push(RowHeader {
            time_ns,
            format,
            first,
        });
    }

    /// Appends a value to the row begun last.
    pub fn push_value(&mut self, value: f64) {
        self.values.push(value);
    }

    /// Appends values to the row begun last.
    pub fn extend_values(&mut self, values: impl IntoIterator<Item = f64>) {
        self.values.extend(values);
    }

    /// Drops the row begun last and its values (used when a frame turns out undecodable).
    pub fn cancel_row(&mut self) {
        if let Some(header) = self.headers.pop() {
            self.values.truncate(header.first as usize);
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Total number of values (samples) in all rows.
    pub fn sample_count(&self) -> usize {
        self.values.len()
    }

    /// Empties the batch, keeping its capacity.
    pub fn clear(&mut self) {
        self.headers.clear();
        self.values.clear();
    }

    /// Row `index`: its header and values.
    pub fn row(&self, index: usize) -> Option<(RowHeader, &[f64])> {
        let header = *self.headers.get(index)?;
        let end = self
            .headers
            .get(index + 1)
            .map_or(self.values.len(), |next| next.first as usize);
        Some((header, &self.values[header.first as usize..end]))
    }

    /// All rows in order.
    pub fn rows(&self) -> impl Iterator<Item = (RowHeader, &[f64])> + '_ {
        let ends = self.headers.iter().skip(1).map(|next| next.first as usize);
        let ends = ends.chain(std::iter::once(self.values.len()));
        self.headers
            .iter()
            .zip(ends)
            .map(|(header, end)| (*header, &self.values[header.first as usize..end]))
    }

    /// Every row's header, in order.
    pub fn headers(&self) -> &[RowHeader] {
        &self.headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_their_values_apart() {
        let mut batch = RowBatch::new();
        batch.begin_row(10, 0);
        batch.push_value(1.0);
        batch.push_value(2.0);
        batch.begin_row(20, 1);
        batch.push_value(3.0);
        batch.begin_row(30, 2);
        batch.push_value(9.0);
        batch.cancel_row();
        let rows: Vec<_> = batch
            .rows()
            .map(|(h, v)| (h.time_ns, h.format, v.to_vec()))
            .collect();
        assert_eq!(rows, vec![(10, 0, vec![1.0, 2.0]), (20, 1, vec![3.0])]);
        assert_eq!(batch.sample_count(), 3);
        batch.clear();
        assert!(batch.is_empty());
    }
}
