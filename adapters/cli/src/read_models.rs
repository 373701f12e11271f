//! `emr projections …`: run, rebuild and inspect the read models, in MySQL/MariaDB
//! when `read_models.mysql_url` is set, else in the embedded SQLite file.

use std::sync::Arc;

use anyhow::{Context, bail};
use emr_eventstore::EventLog;
use emr_projections::{
    AccessLogProjection, AccessProjection, AccountDirectory, DashboardProjection, DiagnosisProjection, FederatedProjection,
    PatientDirectory, ReadModelDb, RecordIndex, SearchIndex, SecurityProjection,
};

use crate::settings::Settings;

/// A connected, migrated read-model database.
pub(crate) struct ReadModels {
    pub(crate) db: ReadModelDb,
    pub(crate) batch_size: usize,
}

impl ReadModels {
    /// Connects to `read_models.mysql_url`, or opens the SQLite file, and migrates
    /// the schema.
    pub(crate) async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let db = match &settings.read_models.mysql_url {
            Some(url) => {
                ReadModelDb::connect_mysql(url, 8).await.context("connecting to the read-model database (read_models.mysql_url)")?
            }
            None => {
                let file = settings.read_models_file();
                ReadModelDb::open_sqlite(&file).await.with_context(|| format!("opening the read-model file {}", file.display()))?
            }
        };
        db.migrate().await.context("migrating the read-model schema")?;
        Ok(Self { db, batch_size: settings.read_models.batch_size })
    }

    /// Runs every projector until `shutdown` turns true.
    pub(crate) async fn run_all(&self, log: Arc<dyn EventLog>, search: SearchIndex, shutdown: tokio::sync::watch::Receiver<bool>) {
        emr_projections::run_every_projection(&self.db, log, self.batch_size, search, shutdown).await;
    }

    /// Rebuilds one projection by name.
    pub(crate) async fn rebuild(
        &self,
        name: &str,
        log: Arc<dyn EventLog>,
        search: SearchIndex,
    ) -> anyhow::Result<emr_projections::Checkpoint> {
        let (db, batch) = (&self.db, self.batch_size);
        let checkpoint = match name {
            PatientDirectory::NAME => emr_projections::rebuild(PatientDirectory, db, log, batch).await,
            RecordIndex::NAME => emr_projections::rebuild(RecordIndex, db, log, batch).await,
            AccessProjection::NAME => emr_projections::rebuild(AccessProjection, db, log, batch).await,
            DashboardProjection::NAME => emr_projections::rebuild(DashboardProjection, db, log, batch).await,
            AccessLogProjection::NAME => emr_projections::rebuild(AccessLogProjection, db, log, batch).await,
            SecurityProjection::NAME => emr_projections::rebuild(SecurityProjection, db, log, batch).await,
            FederatedProjection::NAME => emr_projections::rebuild(FederatedProjection, db, log, batch).await,
            DiagnosisProjection::NAME => emr_projections::rebuild(DiagnosisProjection, db, log, batch).await,
            AccountDirectory::NAME => emr_projections::rebuild(AccountDirectory, db, log, batch).await,
            SearchIndex::NAME => emr_projections::rebuild(search, db, log, batch).await,
            other => bail!("no projection named `{other}`; known: {}", emr_projections::all().join(", ")),
        };
        Ok(checkpoint?)
    }

    /// Lag of every projection.
    pub(crate) async fn status(&self, log: Arc<dyn EventLog>) -> anyhow::Result<Vec<emr_projections::Lag>> {
        Ok(emr_projections::lags(&self.db, log).await?)
    }
}
