//! Multi-row statements shared by the projections: load the rows a batch touches
//! with one `SELECT … IN (…)`, write them back with one `INSERT … ON DUPLICATE KEY
//! UPDATE` per chunk.

use sqlx::mysql::{MySql, MySqlRow};
use sqlx::query_builder::Separated;
use sqlx::{FromRow, MySqlConnection, QueryBuilder};

use crate::error::ProjectionError;

/// Rows per statement: keeps placeholders (rows × columns) far below MySQL's 65,535.
const CHUNK: usize = 1000;

/// Rows whose key is among `keys`: `prefix` ends with `WHERE <key> IN `.
pub(crate) async fn select_in<R>(conn: &mut MySqlConnection, prefix: &'static str, keys: &[String]) -> Result<Vec<R>, ProjectionError>
where
    R: for<'r> FromRow<'r, MySqlRow> + Send + Unpin,
{
    let mut rows = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK) {
        let mut query = QueryBuilder::<MySql>::new(prefix);
        query.push("(");
        let mut separated = query.separated(", ");
        for key in chunk {
            separated.push_bind(key.clone());
        }
        separated.push_unseparated(")");
        rows.extend(query.build_query_as::<R>().fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// Like [`select_in`], keyed by `key` of each row.
pub(crate) async fn load_by_key<R>(
    conn: &mut MySqlConnection,
    prefix: &'static str,
    keys: &[String],
    key: impl Fn(&R) -> String,
) -> Result<std::collections::HashMap<String, R>, ProjectionError>
where
    R: for<'r> FromRow<'r, MySqlRow> + Send + Unpin,
{
    Ok(select_in::<R>(conn, prefix, keys).await?.into_iter().map(|row| (key(&row), row)).collect())
}

/// Writes `rows`: `insert` is `INSERT INTO t (cols) `, `bind` pushes one row's
/// values, `on_duplicate` is ` ON DUPLICATE KEY UPDATE …`.
pub(crate) async fn upsert<T>(
    conn: &mut MySqlConnection,
    insert: &'static str,
    rows: &[T],
    mut bind: impl FnMut(&mut Separated<'_, MySql, &'static str>, &T),
    on_duplicate: &'static str,
) -> Result<(), ProjectionError> {
    for chunk in rows.chunks(CHUNK) {
        let mut query = QueryBuilder::<MySql>::new(insert);
        query.push_values(chunk, |mut values, row| bind(&mut values, row));
        query.push(on_duplicate);
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}
