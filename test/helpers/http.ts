import { request as httpRequest } from 'node:http'
import { request } from 'undici'

export interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: any, text: string, ms: number }

export interface SendOptions {
  token?: string
  headers?: Record<string, string>
  /** Sent as JSON. */
  body?: unknown
}

/** One HTTP request to the gateway over loopback; the answer parsed when it is JSON. */
export async function send (base: string, method: string, path: string, options: SendOptions = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers }
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  const started = performance.now()
  const response = await request(`${base}${path}`, {
    method: method as 'GET',
    headers,
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) })
  })
  const text = await response.body.text()
  const ms = performance.now() - started
  let body: unknown
  try { body = JSON.parse(text) } catch { body = undefined }
  return { status: response.statusCode, headers: response.headers, body, text, ms }
}

export const enc = encodeURIComponent

/** The join route of a room, as the gateway takes it. */
export const membersPath = (room: string, query = ''): string => `/v1/rooms/${enc(room)}/members${query}`
export const memberPath = (room: string, userId: string, query = ''): string => `/v1/rooms/${enc(room)}/members/${enc(userId)}${query}`

/**
 * A request sent exactly as a recording holds it (node:http, with options rather than a URL: a
 * URL would drop a literal '#' as a fragment, and recorded paths send one): the replay tests.
 */
export async function sendRecorded (url: string, method: string, path: string, headers: Record<string, string>, body: string | undefined): Promise<{ status: number, text: string }> {
  return await new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url)
    const req = httpRequest({ hostname, port, path, method, headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}
