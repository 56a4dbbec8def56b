/**
 * Sends one signed Customer.io reporting webhook (an email `sent` event) to the running example
 * and prints the funnel counter before and after: `npm run send-webhook [-- <example url>]`.
 * Signs with CUSTOMERIO_WEBHOOK_SIGNING_KEY (its first key) if set, else the example's demo key.
 */
import { signWebhook, webhookEvent } from '../lib/testing/index.ts'
import { signingKeyFrom } from './demo-key.ts'

const base = (process.argv[2] ?? `http://127.0.0.1:${process.env.PORT ?? 3000}`).replace(/\/+$/, '')
// webhookEvent() makes a campaign email: the example's background traffic sends transactional ones.
const SERIES = 'cio_email_sent_total{source="webhook",type="campaign"}'

async function sentLine (): Promise<string> {
  const text = await (await fetch(`${base}/metrics`)).text()
  return text.split('\n').find((line) => line.startsWith(`${SERIES} `)) ?? `${SERIES} is not on ${base}/metrics`
}

try {
  console.log(`before: ${await sentLine()}`)
  const body = JSON.stringify(webhookEvent('email', 'sent'))
  const res = await fetch(`${base}/webhooks/customerio`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...signWebhook(body, signingKeyFrom(process.env)) },
    body
  })
  console.log(`POST ${base}/webhooks/customerio: ${res.status} ${await res.text()}`)
  console.log(`after:  ${await sentLine()}`)
  if (!res.ok) process.exitCode = 1
} catch (err) {
  console.error(`could not reach the example at ${base} (is \`npm start\` running?): ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`)
  process.exitCode = 1
}
