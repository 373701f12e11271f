//! The event-store conformance suite, run unchanged against JetStream (a real
//! nats-server) and the embedded SQLite store.

use emr_eventstore::conformance::*;

emr_tests::on_every_backend!(
    log_appends_in_order,
    log_appends_batches_in_order,
    log_appends_each_on_its_own,
    batched_creations_answer_each_as_one_would,
    log_refuses_stale_expectations,
    log_drops_repeated_commit_ids,
    log_appends_changes_together,
    log_refuses_changes_whole,
    subscription_follows_the_log,
    followers_read_as_reads_do,
    aggregates_round_trip,
    concurrent_writers_exactly_one_wins,
    no_update_is_lost_under_contention,
    retried_commands_apply_once,
    conditional_commands_refuse_a_moved_aggregate,
    creations_without_a_read_end_as_execute_does,
    trusted_cache_entries_lose_no_update,
    command_ids_belong_to_one_aggregate,
    snapshots_and_cache_match_a_full_replay,
    erasure_shreds_phi_and_keeps_the_log,
    key_store_rewraps_only_the_key_it_read,
    malformed_input_is_a_typed_error,
    old_event_versions_are_upcast,
    long_histories_read_back_whole,
);
