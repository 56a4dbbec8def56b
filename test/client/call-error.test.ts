import t from 'tap'
import { CustomerIORequestError } from 'customerio-node'
import { rejectionFor } from '../../lib/client/call-error.ts'
import { operations } from '../../lib/client/operations.ts'

const identify = operations.find((op) => op.name === 'identify')!

t.test('the SDK\'s error is masked in place before it becomes the cause: message, stack, body, and its own causes', async (t) => {
  const deep = new Error('root jane@example.com')
  let chain: Error = deep
  for (let i = 0; i < 6; i++) chain = new Error(`level ${i} jane@example.com`, { cause: chain })
  const sdk = new CustomerIORequestError({ meta: { error: 'jane@example.com is not valid; key sk-live-abcdefgh' } }, 422, { statusCode: 422, headers: {}, ok: false }, '{"email":"jane@example.com"}')
  Object.assign(sdk, { cause: chain })
  const rejection = rejectionFor(sdk, identify, '422', 422, ['sk-live-abcdefgh']) as Error & { cause: CustomerIORequestError }
  t.equal(rejection.cause, sdk, 'the SDK\'s own object, reachable')
  t.notMatch(sdk.message + sdk.stack + sdk.body, /jane@example\.com|sk-live-abcdefgh/)
  t.match(sdk.message, /\[email\] is not valid/)
  t.notMatch((sdk.cause as Error).message, /jane@/, 'its cause too')
  t.equal(deep.message, 'root [email]', 'however deep')
  const looped = new Error('loop bob@example.com')
  Object.assign(looped, { cause: looped })
  rejectionFor(looped, identify, 'network', undefined, [])
  t.equal(looped.message, 'loop [email]', 'a cause chain that loops ends')

  const bare = new Error('no stack for bob@example.com')
  delete (bare as { stack?: string }).stack
  rejectionFor(bare, identify, 'network', undefined, [])
  t.equal(bare.message, 'no stack for [email]')
  t.equal(bare.stack, undefined, 'an error without a stack keeps none')

  const dom = new DOMException('aborted for bob@example.com', 'TimeoutError')
  rejectionFor(dom, identify, 'timeout', undefined, [])
  t.equal(dom.message, 'aborted for [email]', 'a getter-only message is masked too')

  const clean = new Error('fetch failed')
  const stack = Object.getOwnPropertyDescriptor(clean, 'stack')
  rejectionFor(clean, identify, 'network', undefined, [])
  t.same(Object.getOwnPropertyDescriptor(clean, 'stack'), stack, 'nothing to mask: the stack is left as it was (not even formatted)')
})

t.test('a refused argument\'s error is a plain FST_CIO_INVALID_ARGUMENT error with the SDK error as its cause', async (t) => {
  const sdk = new Error('customerId is required')
  const rejection = rejectionFor(sdk, identify, 'invalid_argument', undefined, []) as Error & { code: string, statusCode: number }
  t.equal(rejection.code, 'FST_CIO_INVALID_ARGUMENT')
  t.equal(rejection.statusCode, 500)
  t.equal(rejection.message, 'Invalid argument to Customer.io identify: customerId is required')
  t.equal(rejection.cause, sdk)
  t.match(rejection.stack, /^FastifyError: Invalid argument to Customer\.io identify: customerId is required\n {4}at /)
  t.equal((rejectionFor('a string', identify, 'invalid_argument', undefined, []) as Error).message, 'Invalid argument to Customer.io identify: undefined', 'a thrown non-error')
})
