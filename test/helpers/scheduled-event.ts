/**
 * The trigger of a scheduled run as the stack's Scheduler target sends it (`aws.scheduler`; an
 * EventBridge rule's says `aws.events`), for the slot `time`.
 */
export function scheduledEvent(
  time: string,
  source: 'aws.scheduler' | 'aws.events' | 'moonkey.cli' = 'aws.scheduler',
): { 'detail-type': 'Scheduled Event'; source: string; time: string; detail: Record<string, never> } {
  return { 'detail-type': 'Scheduled Event', source, time, detail: {} };
}
