/*
 * Request authentication as OSS does it, for the two header signatures:
 *
 * V1  `Authorization: OSS <AccessKeyId>:<Signature>`, Signature = base64(HMAC-SHA1(secret,
 *     VERB \n Content-MD5 \n Content-Type \n Date \n CanonicalizedOSSHeaders CanonicalizedResource)).
 *     Date is `x-oss-date` when sent (ali-oss sends no Date header), else `Date`. The resource is
 *     `/bucket/key` with only the sub-resources of OSS's documented list, sorted (`?uploads`,
 *     `?partNumber=1&uploadId=…`, `?delete`, `?continuation-token=…`, …); ordinary query
 *     parameters such as `prefix` or `max-keys` are not signed.
 * V4  `Authorization: OSS4-HMAC-SHA256 Credential=<id>/<yyyymmdd>/<region>/oss/aliyun_v4_request,
 *     AdditionalHeaders=<h1;h2>,Signature=<hex>`: a canonical request (verb, URI-encoded `/bucket/key`,
 *     every query parameter, content-type/content-md5/x-oss-* plus the additional headers, the
 *     additional header names, `x-oss-content-sha256`), hashed into a string to sign and signed with
 *     the key derived from `aliyun_v4` + secret, date, region, `oss`, `aliyun_v4_request`.
 *
 * Both reject requests more than 15 minutes from the server's clock (RequestTimeTooSkewed).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { ossErrors } from './errors.js';

/** The one key pair the server accepts, and an STS token that must come with it when set. */
export interface OssCredentials {
  accessKeyId: string;
  accessKeySecret: string;
  securityToken?: string;
}

/** A query parameter as sent: decoded name and value (`''` for `?uploads` and `?uploads=`). */
export type QueryParameter = readonly [name: string, value: string];

/** What a signature covers. */
export interface SignedRequest {
  method: string;
  headers: IncomingHttpHeaders;
  /** Undefined for service-level requests. */
  bucket: string | undefined;
  /** Decoded object key; `''` for bucket-level requests. */
  key: string;
  query: readonly QueryParameter[];
}

export type SignatureVersion = 'v1' | 'v4';

/** The sub-resources V1 signs (Aliyun's documented list); other query parameters are not signed. */
export const SIGNED_SUBRESOURCES: ReadonlySet<string> = new Set(
  `acl uploads location cors logging website referer lifecycle delete append tagging objectMeta
   uploadId partNumber security-token position img style styleName replication replicationProgress
   replicationLocation cname bucketInfo comp qos live status vod startTime endTime symlink
   x-oss-process response-content-type x-oss-traffic-limit response-content-language response-expires
   response-cache-control response-content-disposition response-content-encoding udf udfName udfImage
   udfId udfImageDesc udfApplication udfApplicationLog restore callback callback-var qosInfo policy
   stat encryption versions versioning versionId requestPayment x-oss-request-payer sequential
   inventory inventoryId continuation-token asyncFetch worm wormId wormExtend withHashContext
   x-oss-enable-md5 x-oss-enable-sha1 x-oss-enable-sha256 x-oss-hash-ctx x-oss-md5-ctx
   transferAcceleration regionList cloudboxes x-oss-ac-source-ip x-oss-ac-subnet-mask x-oss-ac-vpc-id
   x-oss-ac-forward-allow metaQuery resourceGroup rtc x-oss-async-process responseHeader`.split(/\s+/),
);

const MAX_SKEW_MS = 15 * 60 * 1000;
const V4_ALGORITHM = 'OSS4-HMAC-SHA256';

/**
 * Checks the request's signature against `credentials`; returns the signature version used.
 * @throws OssError AccessDenied (no or unreadable signature), InvalidAccessKeyId,
 *   SignatureDoesNotMatch, RequestTimeTooSkewed, InvalidSecurityToken, InvalidArgument.
 */
export function authenticate(request: SignedRequest, credentials: OssCredentials, region: string, now = Date.now()): SignatureVersion {
  const authorization = header(request.headers, 'authorization');
  if (authorization === undefined) throw ossErrors.accessDenied('AccessDenied: anonymous access is not allowed.');
  const version = authorization.startsWith(`${V4_ALGORITHM} `) ? 'v4' : 'v1';
  if (version === 'v4') verifyV4(request, authorization, credentials, region, now);
  else verifyV1(request, authorization, credentials, now);
  if (credentials.securityToken !== undefined && header(request.headers, 'x-oss-security-token') !== credentials.securityToken) {
    throw ossErrors.invalidSecurityToken();
  }
  return version;
}

function verifyV1(request: SignedRequest, authorization: string, credentials: OssCredentials, now: number): void {
  const match = /^OSS ([^:\s]+):(\S+)$/.exec(authorization);
  if (!match) throw ossErrors.invalidArgument('Authorization header is invalid.', 'Authorization', authorization);
  const [, accessKeyId, signature] = match as unknown as [string, string, string];
  if (accessKeyId !== credentials.accessKeyId) throw ossErrors.invalidAccessKeyId(accessKeyId);
  const date = header(request.headers, 'x-oss-date') ?? header(request.headers, 'date');
  if (date === undefined) throw ossErrors.accessDenied('AccessDenied: the request has neither a Date nor an x-oss-date header.');
  checkSkew(Date.parse(date), date, now);

  const stringToSign = [
    request.method,
    header(request.headers, 'content-md5') ?? '',
    header(request.headers, 'content-type') ?? '',
    date,
    ...canonicalOssHeaders(request.headers).map(([name, value]) => `${name}:${value}`),
    canonicalResourceV1(request),
  ].join('\n');
  const expected = createHmac('sha1', credentials.accessKeySecret).update(stringToSign, 'utf8').digest('base64');
  if (!sameText(expected, signature)) throw ossErrors.signatureDoesNotMatch(accessKeyId, stringToSign);
}

function canonicalResourceV1(request: SignedRequest): string {
  const path = request.bucket === undefined ? '/' : `/${request.bucket}/${request.key}`;
  const signed = request.query
    .filter(([name]) => SIGNED_SUBRESOURCES.has(name))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => (value === '' ? name : `${name}=${value}`));
  return signed.length === 0 ? path : `${path}?${signed.join('&')}`;
}

function verifyV4(request: SignedRequest, authorization: string, credentials: OssCredentials, region: string, now: number): void {
  const fields = new Map(
    authorization
      .slice(V4_ALGORITHM.length + 1)
      .split(',')
      .map((field) => field.trim().split('=', 2) as [string, string | undefined]),
  );
  const credential = fields.get('Credential');
  const signature = fields.get('Signature');
  const scope = credential?.split('/');
  if (scope?.length !== 5 || signature === undefined) {
    throw ossErrors.invalidArgument('Authorization header is invalid.', 'Authorization', authorization);
  }
  const [accessKeyId, scopeDate, scopeRegion, product, terminator] = scope as [string, string, string, string, string];
  if (accessKeyId !== credentials.accessKeyId) throw ossErrors.invalidAccessKeyId(accessKeyId);
  if (product !== 'oss' || terminator !== 'aliyun_v4_request') {
    throw ossErrors.invalidArgument('Invalid credential scope in Authorization header.', 'Credential', credential!);
  }
  if (scopeRegion !== region) {
    throw ossErrors.invalidArgument(`Invalid signing region in Authorization header: expected ${region}.`, 'Credential', credential!);
  }
  const timestamp = header(request.headers, 'x-oss-date') ?? '';
  const parts = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(timestamp);
  if (!parts) throw ossErrors.accessDenied('AccessDenied: V4 requests need an x-oss-date header like 20240101T000000Z.');
  if (timestamp.slice(0, 8) !== scopeDate) {
    throw ossErrors.invalidArgument('Invalid signing date in Authorization header.', 'Credential', credential!);
  }
  const [, y, mo, d, h, mi, s] = parts.map(Number) as [number, number, number, number, number, number, number];
  checkSkew(Date.UTC(y, mo - 1, d, h, mi, s), timestamp, now);
  const payloadHash = header(request.headers, 'x-oss-content-sha256');
  if (payloadHash !== 'UNSIGNED-PAYLOAD') {
    throw ossErrors.invalidArgument('x-oss-content-sha256 must be UNSIGNED-PAYLOAD.', 'x-oss-content-sha256', payloadHash);
  }

  const additional = (fields.get('AdditionalHeaders') ?? '').split(';').filter((name) => name !== '');
  const signedHeaders = new Map<string, string>();
  for (const name of additional) {
    const value = header(request.headers, name);
    if (value === undefined) {
      throw ossErrors.invalidArgument(`Additional header ${name} is not in the request.`, 'AdditionalHeaders', name);
    }
    signedHeaders.set(name, value.trim());
  }
  for (const name of ['content-type', 'content-md5']) {
    const value = header(request.headers, name);
    if (value !== undefined) signedHeaders.set(name, value.trim());
  }
  for (const [name, value] of canonicalOssHeaders(request.headers)) signedHeaders.set(name, value);

  const canonicalRequest = [
    request.method,
    encodeRfc3986(request.bucket === undefined ? '/' : `/${request.bucket}/${request.key}`).replace(/%2F/g, '/'),
    request.query
      .map(([name, value]) => [encodeRfc3986(name), encodeRfc3986(value)] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, value]) => (value === '' ? name : `${name}=${value}`))
      .join('&'),
    [...signedHeaders]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, value]) => `${name}:${value}\n`)
      .join(''),
    additional.join(';'),
    payloadHash,
  ].join('\n');
  const stringToSign = [
    V4_ALGORITHM,
    timestamp,
    `${scopeDate}/${scopeRegion}/oss/aliyun_v4_request`,
    createHash('sha256').update(canonicalRequest).digest('hex'),
  ].join('\n');
  let key = createHmac('sha256', `aliyun_v4${credentials.accessKeySecret}`).update(scopeDate).digest();
  for (const part of [scopeRegion, 'oss', 'aliyun_v4_request']) key = createHmac('sha256', key).update(part).digest();
  const expected = createHmac('sha256', key).update(stringToSign).digest('hex');
  if (!sameText(expected, signature)) throw ossErrors.signatureDoesNotMatch(accessKeyId, stringToSign);
}

/** The request's `x-oss-*` headers, lower-case names and trimmed values, sorted by name. */
function canonicalOssHeaders(headers: IncomingHttpHeaders): [string, string][] {
  return Object.keys(headers)
    .filter((name) => name.startsWith('x-oss-'))
    .sort()
    .map((name) => [name, header(headers, name)!.trim()]);
}

function checkSkew(time: number, text: string, now: number): void {
  if (Number.isNaN(time)) throw ossErrors.accessDenied(`AccessDenied: invalid request date '${text}'.`);
  if (Math.abs(time - now) > MAX_SKEW_MS) throw ossErrors.requestTimeTooSkewed(text);
}

/** A header's value (repeated headers joined with commas). */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/** Percent-encodes everything but RFC 3986 unreserved characters. */
function encodeRfc3986(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
