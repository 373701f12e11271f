//! Multi-row statements shared by the projections: load the rows a batch touches
//! with one `SELECT … IN (…)`, write them back with one upsert per chunk.

use std::collections::HashMap;

use crate::db::{Readable, Tx, Value};
use crate::error::ProjectionError;

/// Rows per statement: keeps placeholders (rows × columns) far below MySQL's
/// 65,535 and SQLite's 32,766.
const CHUNK: usize = 1000;

/// `vec![Value::from(a), Value::from(b), …]`: one row's parameters.
macro_rules! values {
    ($($value:expr),+ $(,)?) => { vec![$($crate::db::Value::from($value)),+] };
}
pub(crate) use values;

/// Rows whose key is among `keys`: `prefix` ends with `WHERE <key> IN `.
pub(crate) async fn select_in<R: Readable>(tx: &mut Tx, prefix: &'static str, keys: &[String]) -> Result<Vec<R>, ProjectionError> {
    let mut rows = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK) {
        let sql = format!("{prefix}({})", vec!["?"; chunk.len()].join(", "));
        rows.extend(tx.fetch_all::<R>(&sql, chunk.iter().map(Value::from).collect()).await?);
    }
    Ok(rows)
}

/// Like [`select_in`], keyed by `key` of each row.
pub(crate) async fn load_by_key<R: Readable>(
    tx: &mut Tx,
    prefix: &'static str,
    keys: &[String],
    key: impl Fn(&R) -> String,
) -> Result<HashMap<String, R>, ProjectionError> {
    Ok(select_in::<R>(tx, prefix, keys).await?.into_iter().map(|row| (key(&row), row)).collect())
}

/// An insert that updates the row already there under the same key.
pub(crate) struct Upsert {
    pub(crate) table: &'static str,
    pub(crate) columns: &'static [&'static str],
    /// The primary key's columns.
    pub(crate) key: &'static [&'static str],
    /// Columns an existing row takes from the new one.
    pub(crate) replace: &'static [&'static str],
    /// Counters an existing row adds the new value to.
    pub(crate) add: &'static [&'static str],
}

impl Upsert {
    fn sql(&self, dialect: crate::db::Dialect, rows: usize) -> String {
        let row = format!("({})", vec!["?"; self.columns.len()].join(", "));
        let updates: Vec<String> = self
            .replace
            .iter()
            .map(|c| format!("{c} = {}", dialect.inserted(c)))
            .chain(self.add.iter().map(|c| format!("{c} = {c} + {}", dialect.inserted(c))))
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES {}{}{}",
            self.table,
            self.columns.join(", "),
            vec![row; rows].join(", "),
            dialect.on_conflict(self.key),
            updates.join(", ")
        )
    }

    /// Writes `rows`, each one `values!` of [`Upsert::columns`].
    pub(crate) async fn run<T>(&self, tx: &mut Tx, rows: &[T], values: impl Fn(&T) -> Vec<Value>) -> Result<(), ProjectionError> {
        for chunk in rows.chunks(CHUNK) {
            let params: Vec<Value> = chunk.iter().flat_map(&values).collect();
            debug_assert_eq!(params.len(), chunk.len() * self.columns.len(), "{}: one value per column", self.table);
            tx.execute(&self.sql(tx.dialect(), chunk.len()), params).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Dialect;

    const COUNTER: Upsert = Upsert { table: "t", columns: &["k", "s", "n"], key: &["k"], replace: &["s"], add: &["n"] };

    #[test]
    fn an_upsert_replaces_some_columns_and_adds_to_counters() {
        assert_eq!(
            COUNTER.sql(Dialect::MySql, 2),
            "INSERT INTO t (k, s, n) VALUES (?, ?, ?), (?, ?, ?) ON DUPLICATE KEY UPDATE s = VALUES(s), n = n + VALUES(n)"
        );
        assert_eq!(
            COUNTER.sql(Dialect::Sqlite, 1),
            "INSERT INTO t (k, s, n) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE SET s = excluded.s, n = n + excluded.n"
        );
    }
}
