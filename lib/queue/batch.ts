/** What the queue and the outbox share about a batch on the wire and Customer.io's answer to it. */

/** `{"batch":[` … `]}` around the operations, and the commas between them. */
export const ENVELOPE_BYTES = 12

/** The positions of the operations a partly accepted batch (207) names as refused. */
export function refusedIndexes (result: unknown): Set<number> {
  const errors = (result as { errors?: Array<{ batch_index?: unknown }> } | undefined)?.errors
  const refused = new Set<number>()
  if (Array.isArray(errors)) {
    for (const error of errors) if (Number.isInteger(error.batch_index)) refused.add(error.batch_index as number)
  }
  return refused
}

/** Customer.io's reasons for refused operations, to log (they never hold personal data beyond what sanitize masks). */
export const refusalErrors = (result: unknown): unknown => (result as { errors?: unknown } | undefined)?.errors
