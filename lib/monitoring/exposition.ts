import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fastifyMetricsModule from 'fastify-metrics'
import baseClient from '@prometheus-io/client'
import type { Metric } from '@prometheus-io/client'
import type { PromClient } from './metrics.ts'
import { CioInvalidOptionsError } from '../errors.ts'
import { boolean, defaultsOf, path, resolveSection, type Rules, type Settings } from '../validation.ts'

export interface CioMetricsOptions {
  /** Route that serves the scrape (Prometheus text or OpenMetrics by `Accept`). Default `/metrics`. */
  endpoint?: string
  /** Whether a fastify-metrics registered by this plugin collects Node.js process metrics. Default `true`. */
  defaultMetrics?: boolean
}

const RULES = {
  endpoint: path('/metrics'),
  defaultMetrics: boolean(true)
} satisfies Rules<CioMetricsOptions>

export type MetricsSettings = Readonly<Omit<Settings<typeof RULES>, 'endpoint'> & {
  /** `false` when `metrics: false`: the registry is still filled, the app exposes it. */
  endpoint: string | false
  /** Whether the caller set `metrics`, which conflicts with an already registered fastify-metrics. */
  explicit: boolean
}>

export const METRICS_DEFAULTS = defaultsOf(RULES)

export function resolveMetricsOptions (value: unknown): MetricsSettings {
  if (value === false) return Object.freeze({ ...METRICS_DEFAULTS, endpoint: false, explicit: true })
  return Object.freeze({ ...resolveSection('metrics', value, RULES), explicit: value !== undefined })
}

// fastify-metrics is CommonJS with `exports.default`: from ESM the plugin sits one level down.
const fastifyMetrics = fastifyMetricsModule.default

let processMetrics: Array<Metric<string>> | undefined

/**
 * The Node.js process metrics, collected once per process: each collection starts its own
 * event-loop-delay monitor and GC observer, which nothing stops, so one per app would leak
 * them with every app registered and closed. The metric objects are shared by every app's
 * registry; they read the process when scraped.
 */
function processMetricsOf (base: PromClient): Array<Metric<string>> {
  if (processMetrics === undefined) {
    const register = new base.Registry()
    base.collectDefaultMetrics({ register })
    processMetrics = register.getMetricsAsArray() as unknown as Array<Metric<string>>
  }
  return processMetrics
}

/**
 * A copy of the client module whose metrics land in one fresh registry, so two Fastify apps
 * in one process never clash on the global registry (fastify-metrics' own histogram would
 * otherwise be registered twice).
 */
function scopedClient (base: PromClient): PromClient {
  const register = new base.Registry()
  const scope = <C extends new (...args: any[]) => object>(Base: C): C =>
    class extends Base {
      constructor (...args: any[]) {
        super({ registers: [register], ...args[0] })
      }
    }
  return {
    ...base,
    register,
    Counter: scope(base.Counter as any),
    Gauge: scope(base.Gauge as any),
    Histogram: scope(base.Histogram as any),
    Summary: scope(base.Summary as any),
    collectDefaultMetrics: () => { for (const metric of processMetricsOf(base)) register.registerMetric(metric) }
  } as PromClient
}

/**
 * OpenMetrics text of a registry. The client's own OpenMetrics mode renames counters in
 * place (strips `_total`), which would corrupt the Prometheus-text rendering of the same
 * metrics, so each metric is rendered through a view that carries the OpenMetrics name.
 */
async function renderOpenMetrics (client: PromClient): Promise<string> {
  const om = new client.Registry(client.Registry.OPENMETRICS_CONTENT_TYPE)
  for (const metric of client.register.getMetricsAsArray() as unknown as Array<Metric<string> & { name: string, type: string }>) {
    const view = {
      name: metric.name,
      type: metric.type,
      get: async () => ({ ...(await metric.get()), name: view.name })
    }
    om.registerMetric(view as unknown as Metric<string>)
  }
  return om.metrics()
}

function wantsOpenMetrics (request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').includes('application/openmetrics-text')
}

/**
 * Makes sure fastify-metrics is registered (reusing an app's own registration, never
 * registering it twice) and returns the client whose registry holds every metric.
 */
export async function setupExposition (fastify: FastifyInstance, metrics: MetricsSettings): Promise<PromClient> {
  if (fastify.hasDecorator('metrics')) {
    if (metrics.explicit) {
      throw new CioInvalidOptionsError('metrics', 'fastify-metrics is already registered and serves its own route; leave this option out')
    }
    return fastify.metrics.client as unknown as PromClient
  }
  const client = scopedClient(baseClient)
  await fastify.register(fastifyMetrics, {
    promClient: client as never,
    endpoint: null,
    defaultMetrics: { enabled: metrics.defaultMetrics },
    // The summary cannot be aggregated across instances and is the costliest per-request part.
    routeMetrics: { enabled: { histogram: true, summary: false } }
  })
  const { endpoint } = metrics
  if (endpoint !== false) {
    fastify.route({
      // HEAD is declared here rather than left to Fastify's automatic HEAD route, which
      // would render the whole registry only to drop the body.
      method: ['GET', 'HEAD'],
      url: endpoint,
      logLevel: 'warn',
      config: { disableMetrics: true },
      handler: async (request: FastifyRequest, reply: FastifyReply) => {
        const openMetrics = wantsOpenMetrics(request)
        reply.type(openMetrics ? client.Registry.OPENMETRICS_CONTENT_TYPE : client.register.contentType)
        if (request.method === 'HEAD') return reply.send()
        return reply.send(openMetrics ? await renderOpenMetrics(client) : await client.register.metrics())
      }
    })
  }
  return client
}
