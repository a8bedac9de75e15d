/** The Glue view of sessions started and ended between consecutive committed scheduled snapshots. */
export const CHANGES_VIEW_NAME = 'session_changes';
