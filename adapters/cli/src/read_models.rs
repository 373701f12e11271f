//! `emr projections …`: run, rebuild and inspect the MySQL read models.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, bail};
use emr_eventstore::EventLog;
use emr_projections::{AccessLogProjection, AccessProjection, DashboardProjection, PatientDirectory, Projector, RecordIndex};
use sqlx::MySqlPool;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};

use crate::settings::Settings;

/// A connected, migrated read-model database.
pub(crate) struct ReadModels {
    pub(crate) pool: MySqlPool,
    pub(crate) options: MySqlConnectOptions,
    pub(crate) batch_size: usize,
}

impl ReadModels {
    /// Connects to `read_models.mysql_url` (if set) and migrates the schema.
    pub(crate) async fn connect(settings: &Settings) -> anyhow::Result<Option<Self>> {
        let Some(url) = &settings.read_models.mysql_url else { return Ok(None) };
        let options = MySqlConnectOptions::from_str(url).context("read_models.mysql_url")?;
        let pool = MySqlPoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await
            .context("connecting to the read-model database")?;
        emr_projections::migrate(&pool).await.context("migrating the read-model schema")?;
        Ok(Some(Self { pool, options, batch_size: settings.read_models.batch_size }))
    }

    pub(crate) async fn require(settings: &Settings) -> anyhow::Result<Self> {
        match Self::connect(settings).await? {
            Some(models) => Ok(models),
            None => bail!("no read-model database configured: set read_models.mysql_url (or EMR__READ_MODELS__MYSQL_URL)"),
        }
    }

    /// Runs every projector until `shutdown` resolves.
    pub(crate) async fn run_all(&self, log: Arc<dyn EventLog>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let batch = self.batch_size;
        let patients = Projector::new(PatientDirectory, self.pool.clone(), log.clone()).with_batch_size(batch).with_durable_feed();
        let records = Projector::new(RecordIndex, self.pool.clone(), log.clone()).with_batch_size(batch).with_durable_feed();
        let access = Projector::new(AccessProjection, self.pool.clone(), log.clone()).with_batch_size(batch).with_durable_feed();
        let dashboard = Projector::new(DashboardProjection, self.pool.clone(), log.clone()).with_batch_size(batch).with_durable_feed();
        let access_log = Projector::new(AccessLogProjection, self.pool.clone(), log).with_batch_size(batch).with_durable_feed();
        tokio::join!(
            patients.run(stopped(shutdown.clone())),
            records.run(stopped(shutdown.clone())),
            access.run(stopped(shutdown.clone())),
            dashboard.run(stopped(shutdown.clone())),
            access_log.run(stopped(shutdown)),
        );
    }

    /// Rebuilds one projection by name.
    pub(crate) async fn rebuild(&self, name: &str, log: Arc<dyn EventLog>) -> anyhow::Result<emr_projections::Checkpoint> {
        let (pool, options, batch) = (&self.pool, &self.options, self.batch_size);
        let checkpoint = match name {
            PatientDirectory::NAME => emr_projections::rebuild(PatientDirectory, pool, options, log, batch).await,
            RecordIndex::NAME => emr_projections::rebuild(RecordIndex, pool, options, log, batch).await,
            AccessProjection::NAME => emr_projections::rebuild(AccessProjection, pool, options, log, batch).await,
            DashboardProjection::NAME => emr_projections::rebuild(DashboardProjection, pool, options, log, batch).await,
            AccessLogProjection::NAME => emr_projections::rebuild(AccessLogProjection, pool, options, log, batch).await,
            other => bail!("no projection named `{other}`; known: {}", emr_projections::all().join(", ")),
        };
        Ok(checkpoint?)
    }

    /// Lag of every projection.
    pub(crate) async fn status(&self, log: Arc<dyn EventLog>) -> anyhow::Result<Vec<emr_projections::Lag>> {
        Ok(emr_projections::lags(&self.pool, log).await?)
    }
}
