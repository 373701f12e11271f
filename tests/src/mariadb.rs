//! A fresh MariaDB database per test, on the server at `EMR_TEST_MYSQL_URL`
//! (default `mysql://root@127.0.0.1:3306/test`; tests/run.sh starts one if absent).

use std::str::FromStr;

use emr_projections::ReadModelDb;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, MySqlPool, Row};

/// A database created for one test; [`TestDatabase::drop_database`] removes it.
pub struct TestDatabase {
    /// Connections to it.
    pub pool: MySqlPool,
    /// The same connections, as the projections see them.
    pub db: ReadModelDb,
    /// How to connect to it.
    pub options: MySqlConnectOptions,
    name: String,
    server_url: String,
    admin: MySqlPool,
}

fn server_url() -> String {
    std::env::var("EMR_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

impl TestDatabase {
    /// Creates an empty database with the read-model schema on the shared server.
    pub async fn fresh() -> Self {
        Self::fresh_on(&server_url()).await
    }

    /// Creates an empty database with the read-model schema on the server at `url`.
    pub async fn fresh_on(url: &str) -> Self {
        let admin_options = MySqlConnectOptions::from_str(url).expect("a MySQL URL");
        let admin = MySqlPoolOptions::new().max_connections(2).connect_with(admin_options.clone()).await.expect("MariaDB is not reachable");
        let name = format!("emr_t_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE `{name}`"))).execute(&admin).await.unwrap();
        let options = admin_options.database(&name);
        let pool = MySqlPoolOptions::new().max_connections(8).connect_with(options.clone()).await.unwrap();
        let db = ReadModelDb::MySql(pool.clone());
        db.migrate().await.unwrap();
        Self { pool, db, options, name, server_url: url.to_owned(), admin }
    }

    /// A connection URL for this database (for clients with their own driver).
    pub fn url(&self) -> String {
        let server = self.server_url.clone();
        let base = server.rsplit_once('/').map_or(server.as_str(), |(base, _)| base);
        format!("{base}/{}", self.name)
    }

    /// Every row of `table` as text, ordered, without `updated_at` columns of
    /// checkpoints (wall-clock time, not projected state).
    pub async fn dump(&self, table: &str) -> Vec<String> {
        let columns: Vec<String> = sqlx::query(
            "SELECT column_name AS c FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&self.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String, _>("c").unwrap())
        .filter(|c| !(table.ends_with("_checkpoint") && c == "updated_at"))
        .collect();
        assert!(!columns.is_empty(), "no table {table}");
        let expression = columns.iter().map(|c| format!("IFNULL(CAST(`{c}` AS CHAR), '<null>')")).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT CONCAT_WS('|', {expression}) AS line FROM `{table}` ORDER BY 1");
        sqlx::query(AssertSqlSafe(sql)).fetch_all(&self.pool).await.unwrap().iter().map(|row| row.try_get("line").unwrap()).collect()
    }

    /// Kills every server connection to this database, as the death of the process
    /// holding them would: MariaDB rolls back their open transactions at once.
    pub async fn kill_connections(&self) {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT CAST(id AS SIGNED) FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()")
                .bind(&self.name)
                .fetch_all(&self.admin)
                .await
                .unwrap();
        for id in ids {
            // The connection may have ended by itself meanwhile.
            let _ = sqlx::query(AssertSqlSafe(format!("KILL {id}"))).execute(&self.admin).await;
        }
    }

    /// Drops the database.
    pub async fn drop_database(self) {
        self.pool.close().await;
        sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{}`", self.name))).execute(&self.admin).await.unwrap();
    }
}
