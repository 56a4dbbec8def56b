import type { APIClient, PipelinesClient, TrackClient } from 'customerio-node'
import type { Api } from '../labels.ts'

/** Which Customer.io API (and so which credentials) a method uses. */
export type HttpMethod = 'GET' | 'PUT' | 'POST' | 'DELETE'

/**
 * Every public method of customerio-node 5.x `TrackClient` and `APIClient`: API, HTTP verb
 * and the route template the SDK calls (with `{param}` placeholders, Customer.io's own
 * path prefixes). The template is what spans carry as `url.template`; the simulator routes
 * by it too, so a wrong entry fails the per-operation tests.
 */
const TABLE = {
  identify: ['track', 'PUT', '/api/v1/customers/{customerId}'],
  destroy: ['track', 'DELETE', '/api/v1/customers/{customerId}'],
  suppress: ['track', 'POST', '/api/v1/customers/{customerId}/suppress'],
  unsuppress: ['track', 'POST', '/api/v1/customers/{customerId}/unsuppress'],
  track: ['track', 'POST', '/api/v1/customers/{customerId}/events'],
  trackAnonymous: ['track', 'POST', '/api/v1/events'],
  trackPageView: ['track', 'POST', '/api/v1/customers/{customerId}/events'],
  trackPush: ['track', 'POST', '/api/v1/push/events'],
  addDevice: ['track', 'PUT', '/api/v1/customers/{customerId}/devices'],
  deleteDevice: ['track', 'DELETE', '/api/v1/customers/{customerId}/devices/{deviceToken}'],
  batch: ['track', 'POST', '/api/v2/batch'],
  mergeCustomers: ['track', 'POST', '/api/v1/merge_customers'],
  getAccountRegion: ['track', 'GET', '/api/v1/accounts/region'],
  entity: ['track', 'POST', '/api/v2/entity'],
  addCustomersToSegment: ['track', 'POST', '/api/v1/segments/{segmentId}/add_customers'],
  removeCustomersFromSegment: ['track', 'POST', '/api/v1/segments/{segmentId}/remove_customers'],
  submitForm: ['track', 'POST', '/api/v1/forms/{formId}/submit'],
  reportMetric: ['track', 'POST', '/api/v1/metrics'],
  unsubscribe: ['track', 'POST', '/unsubscribe/{deliveryId}'],
  sendEmail: ['app', 'POST', '/v1/send/email'],
  sendPush: ['app', 'POST', '/v1/send/push'],
  sendSMS: ['app', 'POST', '/v1/send/sms'],
  sendWhatsApp: ['app', 'POST', '/v1/send/whatsapp'],
  sendInboxMessage: ['app', 'POST', '/v1/send/inbox_message'],
  sendInApp: ['app', 'POST', '/v1/send/in_app'],
  getCustomersByEmail: ['app', 'GET', '/v1/customers'],
  triggerBroadcast: ['app', 'POST', '/v1/campaigns/{broadcastId}/triggers'],
  listExports: ['app', 'GET', '/v1/exports'],
  getExport: ['app', 'GET', '/v1/exports/{id}'],
  downloadExport: ['app', 'GET', '/v1/exports/{id}/download'],
  createCustomersExport: ['app', 'POST', '/v1/exports/customers'],
  createDeliveriesExport: ['app', 'POST', '/v1/exports/deliveries'],
  getAttributes: ['app', 'GET', '/v1/customers/{id}/attributes'],
  getCustomerActivities: ['app', 'GET', '/v1/customers/{customerId}/activities'],
  getCustomerMessages: ['app', 'GET', '/v1/customers/{customerId}/messages'],
  getCustomerRelationships: ['app', 'GET', '/v1/customers/{customerId}/relationships'],
  getCustomerSegments: ['app', 'GET', '/v1/customers/{customerId}/segments'],
  getCustomerSubscriptionPreferences: ['app', 'GET', '/v1/customers/{customerId}/subscription_preferences'],
  searchCustomers: ['app', 'POST', '/v1/customers'],
  getCustomersAttributes: ['app', 'POST', '/v1/customers/attributes'],
  getObjectAttributes: ['app', 'GET', '/v1/objects/{objectTypeId}/{objectId}/attributes'],
  getObjectRelationships: ['app', 'GET', '/v1/objects/{objectTypeId}/{objectId}/relationships'],
  findObjects: ['app', 'POST', '/v1/objects'],
  listObjectTypes: ['app', 'GET', '/v1/object_types'],
  listActivities: ['app', 'GET', '/v1/activities'],
  listSegments: ['app', 'GET', '/v1/segments'],
  createSegment: ['app', 'POST', '/v1/segments'],
  getSegment: ['app', 'GET', '/v1/segments/{segmentId}'],
  deleteSegment: ['app', 'DELETE', '/v1/segments/{segmentId}'],
  getSegmentCustomerCount: ['app', 'GET', '/v1/segments/{segmentId}/customer_count'],
  getSegmentMembership: ['app', 'GET', '/v1/segments/{segmentId}/membership'],
  getSegmentUsedBy: ['app', 'GET', '/v1/segments/{segmentId}/used_by'],
  listSubscriptionTopics: ['app', 'GET', '/v1/subscription_topics'],
  listSubscriptionChannels: ['app', 'GET', '/v1/subscription_channels'],
  getSubscriptionCenterToken: ['app', 'GET', '/v1/subscription_center/{customerId}/token'],
  listTransactionalMessages: ['app', 'GET', '/v1/transactional'],
  getTransactionalMessage: ['app', 'GET', '/v1/transactional/{transactionalId}'],
  getTransactionalMessageContents: ['app', 'GET', '/v1/transactional/{transactionalId}/contents'],
  getTransactionalMessageLanguage: ['app', 'GET', '/v1/transactional/{transactionalId}/language/{language}'],
  updateTransactionalMessageLanguage: ['app', 'PUT', '/v1/transactional/{transactionalId}/language/{language}'],
  getTransactionalMessageDeliveries: ['app', 'GET', '/v1/transactional/{transactionalId}/messages'],
  getTransactionalMessageMetrics: ['app', 'GET', '/v1/transactional/{transactionalId}/metrics'],
  getTransactionalMessageLinkMetrics: ['app', 'GET', '/v1/transactional/{transactionalId}/metrics/links'],
  updateTransactionalMessageContent: ['app', 'PUT', '/v1/transactional/{transactionalId}/content/{contentId}'],
  listCampaigns: ['app', 'GET', '/v1/campaigns'],
  getCampaign: ['app', 'GET', '/v1/campaigns/{campaignId}'],
  getCampaignActions: ['app', 'GET', '/v1/campaigns/{campaignId}/actions'],
  getCampaignAction: ['app', 'GET', '/v1/campaigns/{campaignId}/actions/{actionId}'],
  updateCampaignAction: ['app', 'PUT', '/v1/campaigns/{campaignId}/actions/{actionId}'],
  getCampaignActionLanguage: ['app', 'GET', '/v1/campaigns/{campaignId}/actions/{actionId}/language/{language}'],
  updateCampaignActionLanguage: ['app', 'PUT', '/v1/campaigns/{campaignId}/actions/{actionId}/language/{language}'],
  getCampaignActionMetrics: ['app', 'GET', '/v1/campaigns/{campaignId}/actions/{actionId}/metrics'],
  getCampaignActionMetricsLinks: ['app', 'GET', '/v1/campaigns/{campaignId}/actions/{actionId}/metrics/links'],
  getCampaignMetrics: ['app', 'GET', '/v1/campaigns/{campaignId}/metrics'],
  getCampaignMetricsLinks: ['app', 'GET', '/v1/campaigns/{campaignId}/metrics/links'],
  getCampaignJourneyMetrics: ['app', 'GET', '/v1/campaigns/{campaignId}/journey_metrics'],
  getCampaignMessages: ['app', 'GET', '/v1/campaigns/{campaignId}/messages'],
  getBroadcastTriggerStatus: ['app', 'GET', '/v1/campaigns/{broadcastId}/triggers/{triggerId}'],
  getBroadcastTriggerErrors: ['app', 'GET', '/v1/campaigns/{broadcastId}/triggers/{triggerId}/errors'],
  listBroadcasts: ['app', 'GET', '/v1/broadcasts'],
  getBroadcast: ['app', 'GET', '/v1/broadcasts/{broadcastId}'],
  getBroadcastActions: ['app', 'GET', '/v1/broadcasts/{broadcastId}/actions'],
  getBroadcastAction: ['app', 'GET', '/v1/broadcasts/{broadcastId}/actions/{actionId}'],
  updateBroadcastAction: ['app', 'PUT', '/v1/broadcasts/{broadcastId}/actions/{actionId}'],
  getBroadcastActionLanguage: ['app', 'GET', '/v1/broadcasts/{broadcastId}/actions/{actionId}/language/{language}'],
  updateBroadcastActionLanguage: ['app', 'PUT', '/v1/broadcasts/{broadcastId}/actions/{actionId}/language/{language}'],
  getBroadcastActionMetrics: ['app', 'GET', '/v1/broadcasts/{broadcastId}/actions/{actionId}/metrics'],
  getBroadcastActionMetricsLinks: ['app', 'GET', '/v1/broadcasts/{broadcastId}/actions/{actionId}/metrics/links'],
  getBroadcastMetrics: ['app', 'GET', '/v1/broadcasts/{broadcastId}/metrics'],
  getBroadcastMetricsLinks: ['app', 'GET', '/v1/broadcasts/{broadcastId}/metrics/links'],
  getBroadcastMessages: ['app', 'GET', '/v1/broadcasts/{broadcastId}/messages'],
  getBroadcastTriggers: ['app', 'GET', '/v1/broadcasts/{broadcastId}/triggers'],
  listNewsletters: ['app', 'GET', '/v1/newsletters'],
  createNewsletter: ['app', 'POST', '/v1/newsletters'],
  getNewsletter: ['app', 'GET', '/v1/newsletters/{newsletterId}'],
  deleteNewsletter: ['app', 'DELETE', '/v1/newsletters/{newsletterId}'],
  getNewsletterContents: ['app', 'GET', '/v1/newsletters/{newsletterId}/contents'],
  getNewsletterContent: ['app', 'GET', '/v1/newsletters/{newsletterId}/contents/{contentId}'],
  updateNewsletterContent: ['app', 'PUT', '/v1/newsletters/{newsletterId}/contents/{contentId}'],
  getNewsletterContentMetrics: ['app', 'GET', '/v1/newsletters/{newsletterId}/contents/{contentId}/metrics'],
  getNewsletterContentMetricsLinks: ['app', 'GET', '/v1/newsletters/{newsletterId}/contents/{contentId}/metrics/links'],
  getNewsletterMetrics: ['app', 'GET', '/v1/newsletters/{newsletterId}/metrics'],
  getNewsletterMetricsLinks: ['app', 'GET', '/v1/newsletters/{newsletterId}/metrics/links'],
  getNewsletterMessages: ['app', 'GET', '/v1/newsletters/{newsletterId}/messages'],
  sendNewsletter: ['app', 'POST', '/v1/newsletters/{newsletterId}/send'],
  scheduleNewsletter: ['app', 'POST', '/v1/newsletters/{newsletterId}/schedule'],
  createNewsletterLanguage: ['app', 'POST', '/v1/newsletters/{newsletterId}/language'],
  getNewsletterLanguage: ['app', 'GET', '/v1/newsletters/{newsletterId}/language/{language}'],
  updateNewsletterLanguage: ['app', 'PUT', '/v1/newsletters/{newsletterId}/language/{language}'],
  deleteNewsletterLanguage: ['app', 'DELETE', '/v1/newsletters/{newsletterId}/language/{language}'],
  getNewsletterTestGroups: ['app', 'GET', '/v1/newsletters/{newsletterId}/test_groups'],
  createNewsletterTestGroup: ['app', 'POST', '/v1/newsletters/{newsletterId}/test_groups'],
  createNewsletterTestGroupLanguage: ['app', 'POST', '/v1/newsletters/{newsletterId}/test_group/{testGroupId}/language'],
  getNewsletterTestGroupLanguage: ['app', 'GET', '/v1/newsletters/{newsletterId}/test_group/{testGroupId}/language/{language}'],
  updateNewsletterTestGroupLanguage: ['app', 'PUT', '/v1/newsletters/{newsletterId}/test_group/{testGroupId}/language/{language}'],
  deleteNewsletterTestGroupLanguage: ['app', 'DELETE', '/v1/newsletters/{newsletterId}/test_group/{testGroupId}/language/{language}'],
  listDesignStudioFolders: ['app', 'GET', '/v1/design_studio/folders'],
  createDesignStudioFolder: ['app', 'POST', '/v1/design_studio/folders'],
  getDesignStudioFolder: ['app', 'GET', '/v1/design_studio/folders/{folderId}'],
  updateDesignStudioFolder: ['app', 'PUT', '/v1/design_studio/folders/{folderId}'],
  deleteDesignStudioFolder: ['app', 'DELETE', '/v1/design_studio/folders/{folderId}'],
  listDesignStudioEmails: ['app', 'GET', '/v1/design_studio/emails'],
  createDesignStudioEmail: ['app', 'POST', '/v1/design_studio/emails'],
  getDesignStudioEmail: ['app', 'GET', '/v1/design_studio/emails/{emailId}'],
  updateDesignStudioEmail: ['app', 'PUT', '/v1/design_studio/emails/{emailId}'],
  deleteDesignStudioEmail: ['app', 'DELETE', '/v1/design_studio/emails/{emailId}'],
  listDesignStudioEmailLanguages: ['app', 'GET', '/v1/design_studio/emails/{emailId}/languages'],
  createDesignStudioEmailLanguage: ['app', 'POST', '/v1/design_studio/emails/{emailId}/languages'],
  getDesignStudioEmailLanguage: ['app', 'GET', '/v1/design_studio/emails/{emailId}/languages/{language}'],
  updateDesignStudioEmailLanguage: ['app', 'PUT', '/v1/design_studio/emails/{emailId}/languages/{language}'],
  deleteDesignStudioEmailLanguage: ['app', 'DELETE', '/v1/design_studio/emails/{emailId}/languages/{language}'],
  listDesignStudioComponents: ['app', 'GET', '/v1/design_studio/components'],
  createDesignStudioComponent: ['app', 'POST', '/v1/design_studio/components'],
  getDesignStudioComponent: ['app', 'GET', '/v1/design_studio/components/{componentId}'],
  updateDesignStudioComponent: ['app', 'PUT', '/v1/design_studio/components/{componentId}'],
  deleteDesignStudioComponent: ['app', 'DELETE', '/v1/design_studio/components/{componentId}'],
  listAssets: ['app', 'GET', '/v1/assets'],
  createAsset: ['app', 'POST', '/v1/assets/files'],
  getAsset: ['app', 'GET', '/v1/assets/files/{assetId}'],
  updateAsset: ['app', 'PUT', '/v1/assets/files/{assetId}'],
  deleteAsset: ['app', 'DELETE', '/v1/assets/files/{assetId}'],
  listAssetFolders: ['app', 'GET', '/v1/assets/folders'],
  createAssetFolder: ['app', 'POST', '/v1/assets/folders'],
  getAssetFolder: ['app', 'GET', '/v1/assets/folders/{folderId}'],
  updateAssetFolder: ['app', 'PUT', '/v1/assets/folders/{folderId}'],
  deleteAssetFolder: ['app', 'DELETE', '/v1/assets/folders/{folderId}'],
  listCollections: ['app', 'GET', '/v1/collections'],
  createCollection: ['app', 'POST', '/v1/collections'],
  getCollection: ['app', 'GET', '/v1/collections/{collectionId}'],
  updateCollection: ['app', 'PUT', '/v1/collections/{collectionId}'],
  deleteCollection: ['app', 'DELETE', '/v1/collections/{collectionId}'],
  getCollectionContent: ['app', 'GET', '/v1/collections/{collectionId}/content'],
  updateCollectionContent: ['app', 'PUT', '/v1/collections/{collectionId}/content'],
  searchSuppression: ['app', 'GET', '/v1/esp/search_suppression/{email}'],
  getSuppressions: ['app', 'GET', '/v1/esp/suppression/{suppressionType}'],
  getDomainSuppressions: ['app', 'GET', '/v1/esp/domains/{domainName}/suppression/{suppressionType}'],
  createSuppression: ['app', 'POST', '/v1/esp/suppression/{suppressionType}/{email}'],
  deleteSuppression: ['app', 'DELETE', '/v1/esp/suppression/{suppressionType}/{email}'],
  listReportingWebhooks: ['app', 'GET', '/v1/reporting_webhooks'],
  createReportingWebhook: ['app', 'POST', '/v1/reporting_webhooks'],
  getReportingWebhook: ['app', 'GET', '/v1/reporting_webhooks/{webhookId}'],
  updateReportingWebhook: ['app', 'PUT', '/v1/reporting_webhooks/{webhookId}'],
  deleteReportingWebhook: ['app', 'DELETE', '/v1/reporting_webhooks/{webhookId}'],
  getSnippets: ['app', 'GET', '/v1/snippets'],
  createSnippet: ['app', 'POST', '/v1/snippets'],
  updateSnippet: ['app', 'PUT', '/v1/snippets'],
  deleteSnippet: ['app', 'DELETE', '/v1/snippets/{name}'],
  getSenderIdentities: ['app', 'GET', '/v1/sender_identities'],
  getSenderIdentity: ['app', 'GET', '/v1/sender_identities/{senderId}'],
  getSenderIdentityUsedBy: ['app', 'GET', '/v1/sender_identities/{senderId}/used_by'],
  getMessages: ['app', 'GET', '/v1/messages'],
  getMessage: ['app', 'GET', '/v1/messages/{messageId}'],
  getArchivedMessage: ['app', 'GET', '/v1/messages/{messageId}/archived_message'],
  createImport: ['app', 'POST', '/v1/imports'],
  getImport: ['app', 'GET', '/v1/imports/{importId}'],
  batchUpdateAttributes: ['app', 'POST', '/v1/data_index/attributes'],
  batchUpdateEvents: ['app', 'POST', '/v1/data_index/events'],
  listWorkspaces: ['app', 'GET', '/v1/workspaces'],
  getIpAddresses: ['app', 'GET', '/v1/info/ip_addresses'],
  // PipelinesClient, as `fastify.cio.pipelines.<method>`: the key is `pipelines.<method>`.
  'pipelines.identify': ['pipelines', 'POST', '/cdp/v1/identify'],
  'pipelines.track': ['pipelines', 'POST', '/cdp/v1/track'],
  'pipelines.page': ['pipelines', 'POST', '/cdp/v1/page'],
  'pipelines.screen': ['pipelines', 'POST', '/cdp/v1/screen'],
  'pipelines.group': ['pipelines', 'POST', '/cdp/v1/group'],
  'pipelines.alias': ['pipelines', 'POST', '/cdp/v1/alias'],
  'pipelines.batch': ['pipelines', 'POST', '/cdp/v1/batch']
} as const satisfies Record<string, readonly [Api, HttpMethod, string]>

export type OperationName = keyof typeof TABLE
type NameOf<A extends Api> = { [K in OperationName]: (typeof TABLE)[K][0] extends A ? K : never }[OperationName]
type PipelinesMethod = NameOf<'pipelines'> extends `pipelines.${infer M}` ? M : never

/** The client: each method with the SDK's own signature and result, Track and App flat, Pipelines under `pipelines`. */
export type CioMethods = Pick<TrackClient, NameOf<'track'> & keyof TrackClient> & Pick<APIClient, NameOf<'app'> & keyof APIClient> & {
  readonly pipelines: Pick<PipelinesClient, PipelinesMethod & keyof PipelinesClient>
}

export interface Operation {
  readonly name: OperationName
  /** The SDK method: the name without its `pipelines.` prefix. */
  readonly call: string
  readonly api: Api
  /** The `operation` label: the method name in snake_case (`trackAnonymous` → `track_anonymous`). */
  readonly label: string
  readonly method: HttpMethod
  readonly template: string
}

export function snakeCase (name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase()
}

export const operations: readonly Operation[] = Object.freeze(
  (Object.keys(TABLE) as OperationName[]).map((name) => {
    const [api, method, template] = TABLE[name]
    const call = name.replace(/^pipelines\./, '')
    return Object.freeze({ name, call, api, label: snakeCase(call), method, template })
  })
)
