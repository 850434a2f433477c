/** An OSS error response: HTTP status, OSS error code and message, and extra elements for the XML. */
export class OssError extends Error {
  override readonly name = 'OssError';

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra elements of the `<Error>` document, e.g. `Key`, `BucketName`, `StringToSign`. */
    readonly details: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** The errors the server answers with, worded as OSS words them. */
export const ossErrors = {
  accessDenied: (message = 'You have no right to access this object because of bucket acl.') => new OssError(403, 'AccessDenied', message),
  invalidAccessKeyId: (accessKeyId: string) =>
    new OssError(403, 'InvalidAccessKeyId', 'The OSS Access Key Id you provided does not exist in our records.', {
      OSSAccessKeyId: accessKeyId,
    }),
  invalidSecurityToken: () => new OssError(403, 'InvalidSecurityToken', 'The security token you provided is invalid.'),
  signatureDoesNotMatch: (accessKeyId: string, stringToSign: string) =>
    new OssError(
      403,
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      { OSSAccessKeyId: accessKeyId, StringToSign: stringToSign },
    ),
  requestTimeTooSkewed: (requestTime: string) =>
    new OssError(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', {
      RequestTime: requestTime,
      ServerTime: new Date().toISOString(),
    }),
  invalidArgument: (message: string, name?: string, value?: string) =>
    new OssError(400, 'InvalidArgument', message, name === undefined ? {} : { ArgumentName: name, ArgumentValue: value ?? '' }),
  invalidDigest: (message = 'The Content-MD5 you specified is not valid.') => new OssError(400, 'InvalidDigest', message),
  malformedXml: () => new OssError(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.'),
  invalidObjectName: (key: string) => new OssError(400, 'InvalidObjectName', 'The specified object is not valid.', { Key: key }),
  noSuchBucket: (bucket: string) => new OssError(404, 'NoSuchBucket', 'The specified bucket does not exist.', { BucketName: bucket }),
  bucketAlreadyExists: (bucket: string) => new OssError(409, 'BucketAlreadyExists', 'The requested bucket name is not available.', { BucketName: bucket }),
  bucketNotEmpty: (bucket: string) => new OssError(409, 'BucketNotEmpty', 'The bucket you tried to delete is not empty.', { BucketName: bucket }),
  noSuchKey: (key: string) => new OssError(404, 'NoSuchKey', 'The specified key does not exist.', { Key: key }),
  fileAlreadyExists: (key: string) =>
    new OssError(409, 'FileAlreadyExists', 'The object you specified already exists and can not be overwritten.', { Key: key }),
  invalidObjectState: (key: string) => new OssError(403, 'InvalidObjectState', "The operation is not valid for the object's state", { Key: key }),
  invalidRange: () => new OssError(416, 'InvalidRange', 'The requested range cannot be satisfied'),
  noSuchUpload: (uploadId: string) =>
    new OssError(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', {
      UploadId: uploadId,
    }),
  invalidPart: (partNumber: number) =>
    new OssError(
      400,
      'InvalidPart',
      'One or more of the specified parts could not be found or the specified entity tag might not have matched ' + "the part's entity tag.",
      { PartNumber: String(partNumber) },
    ),
  invalidPartOrder: () =>
    new OssError(400, 'InvalidPartOrder', 'The list of parts was not in ascending order. Parts list must specified in order by part number.'),
  entityTooSmall: (partNumber: number) =>
    new OssError(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size.', {
      PartNumber: String(partNumber),
    }),
  notImplemented: (what: string) => new OssError(501, 'NotImplemented', `${what} is not implemented by the OSS test server.`),
  internalError: (message = 'We encountered an internal error. Please try again.') => new OssError(500, 'InternalError', message),
};
