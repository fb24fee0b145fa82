//! The store conformance suite: every case is written once, over `Arc<dyn Store>`, and
//! runs on SQLite (a fresh file in a temp directory) and on PostgreSQL (a fresh schema
//! in the database named by `HOLDFAST_TEST_POSTGRES_URL`; skipped loudly without it,
//! failed under `HOLDFAST_CI=1`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../test-support/needs.rs"]
mod needs;

mod conformance {
    pub(crate) mod batches;
    pub(crate) mod coordination;
    pub(crate) mod evals;
    pub(crate) mod examples;
    pub(crate) mod harness;
    pub(crate) mod health;
    pub(crate) mod leases;
    pub(crate) mod samples;
    pub(crate) mod steps;
    pub(crate) mod tasks;
    pub(crate) mod tenants;
    pub(crate) mod wakes;
}

use conformance::harness;

macro_rules! conformance {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = crate::harness::sqlite(stringify!($case)).await;
                    crate::conformance::$module::$case(h.store.clone()).await;
                    h.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(h) = crate::harness::postgres(stringify!($case)).await else { return };
                    crate::conformance::$module::$case(h.store.clone()).await;
                    h.finish().await;
                }
            )*
        }
    };
}

conformance! {
    tasks::workflow_versions_are_immutable,
    tasks::submit_with_the_same_key_returns_the_same_task,
    tasks::concurrent_duplicate_submits_create_one_task,
    tasks::advance_commits_step_task_and_journal_together,
    tasks::failure_mid_advance_leaves_nothing_partial,
    steps::committed_step_is_never_committed_again,
    steps::retry_queue_orders_by_next_attempt,
    steps::journal_is_ordered_and_pages,
    tasks::list_tasks_filters_and_pages,
    tasks::cancel_fences_the_running_node,
    tasks::bad_input_is_refused_with_nothing_stored,
    tasks::a_tasks_traceparent_is_kept_for_whoever_runs_it,
    leases::expired_lease_is_taken_over_and_the_old_token_is_stale,
    leases::heartbeat_keeps_a_lease_and_release_frees_it,
    leases::a_restarted_node_releases_its_predecessors_leases_at_once,
    leases::concurrent_claimers_never_share_a_task,
    leases::failed_writes_in_a_batch_do_not_disturb_the_others,
    coordination::worker_job_tokens_fence_stale_workers,
    coordination::lock_tokens_only_grow_and_fence_writes,
    coordination::escalation_lifecycle,
    coordination::config_history,
    coordination::config_gates_are_kept_per_version,
    wakes::waiting_task_with_a_timer_is_claimed_when_due,
    wakes::job_finished_before_the_advance_to_waiting_queues_the_task,
    wakes::job_finished_after_the_advance_to_waiting_wakes_the_task,
    wakes::escalation_resolved_before_the_advance_to_waiting_queues_the_task,
    wakes::escalation_resolved_after_the_advance_to_waiting_wakes_the_task,
    wakes::an_old_finished_job_does_not_wake_a_step_waiting_on_a_new_one,
    wakes::completion_racing_the_advance_to_waiting_never_loses_the_wake,
    batches::concurrent_advances_of_many_tasks_all_commit,
    batches::a_stale_advance_among_many_is_refused_alone,
    batches::a_step_committed_twice_among_many_is_a_conflict_alone,
    batches::a_duplicate_job_among_many_fails_alone,
    batches::concurrent_submissions_are_each_answered_alone,
    tenants::idempotency_keys_are_each_tenants_own,
    tenants::lists_queues_and_claims_see_only_their_tenant,
    evals::eval_cases_are_recorded_once_and_a_run_resumes,
    evals::eval_runs_are_each_tenants_own,
    evals::bad_eval_input_is_refused_with_nothing_stored,
    evals::concurrent_case_results_all_commit,
    examples::near_duplicates_merge_and_the_latest_correction_wins,
    examples::approval_and_retirement_change_what_is_active,
    examples::example_changes_arrive_in_revision_order,
    examples::usage_counts_add_up_for_their_own_tenant_only,
    examples::examples_are_each_tenants_own,
    examples::bad_example_input_is_refused_with_nothing_stored,
    examples::example_vectors_are_kept_per_model_replaced_and_each_tenants_own,
    samples::samples_read_back_list_newest_first_and_expire,
    samples::samples_are_each_tenants_own,
    samples::a_batch_keeps_its_order_and_refuses_bad_samples_alone,
    health::a_bucket_grants_what_it_holds_and_refills_at_its_rate,
    health::concurrent_takers_never_get_the_same_units,
    health::breaker_notes_come_back_in_order_to_every_reader,
    health::bad_health_input_is_refused_with_nothing_stored,
}
