import { randomBytes } from 'node:crypto';
import { OssError, ossErrors } from './errors.js';
import { childText, childrenNamed, element, parseXml, textElement, type XmlElement } from './xml.js';

/*
 * PutBucketLifecycle's body, checked as OSS checks it
 * (https://www.alibabacloud.com/help/en/oss/developer-reference/putbucketlifecycle): a
 * `<LifecycleConfiguration>` of 1 to 1000 `<Rule>`s, each with a `<Prefix>` (may be empty), a
 * `<Status>` of Enabled or Disabled and at least one action (Expiration, Transition,
 * AbortMultipartUpload, NoncurrentVersionExpiration, NoncurrentVersionTransition); a Transition
 * has Days (a positive integer) or CreatedBeforeDate and a StorageClass OSS transitions to; IDs
 * are at most 255 bytes and unique (OSS makes one up for a rule without). A Put replaces the
 * bucket's configuration; rules are stored, not executed.
 */

const MAX_RULES = 1000;
const ACTIONS = ['Expiration', 'Transition', 'AbortMultipartUpload', 'NoncurrentVersionExpiration', 'NoncurrentVersionTransition'];
const TRANSITION_CLASSES = new Set(['IA', 'Archive', 'ColdArchive', 'DeepColdArchive']);

/** An element and everything in it, written back out. */
function serialise(node: XmlElement): string {
  return node.children.length === 0 ? textElement(node.name, node.text) : element(node.name, ...node.children.map(serialise));
}

const invalid = (message: string, name: string, value: string) => ossErrors.invalidArgument(message, name, value);

/** The checked configuration as GetBucketLifecycle returns it (without the declaration). */
export function checkedLifecycle(body: Buffer): string {
  const root = parseXml(body.toString('utf8'));
  if (root.name !== 'LifecycleConfiguration') throw ossErrors.malformedXml();
  const rules = childrenNamed(root, 'Rule');
  if (rules.length === 0 || rules.length > MAX_RULES) throw ossErrors.malformedXml();
  const ids = new Set<string>();
  const written = rules.map((rule) => {
    const id = childText(rule, 'ID') || `rule-${randomBytes(8).toString('hex')}`;
    if (Buffer.byteLength(id) > 255) throw invalid('The ID of a rule is at most 255 bytes.', 'ID', id);
    if (ids.has(id)) throw invalid('The rule IDs must be unique.', 'ID', id);
    ids.add(id);
    if (childText(rule, 'Prefix') === undefined) throw ossErrors.malformedXml();
    const status = childText(rule, 'Status') ?? '';
    if (status !== 'Enabled' && status !== 'Disabled') throw invalid('Status must be Enabled or Disabled.', 'Status', status);
    if (!rule.children.some((child) => ACTIONS.includes(child.name))) throw ossErrors.malformedXml();
    for (const transition of childrenNamed(rule, 'Transition')) {
      const days = childText(transition, 'Days');
      const before = childText(transition, 'CreatedBeforeDate');
      if ((days === undefined) === (before === undefined)) throw ossErrors.malformedXml();
      if (days !== undefined && !/^[1-9]\d*$/.test(days)) throw invalid('Days must be a positive integer.', 'Days', days);
      const storageClass = childText(transition, 'StorageClass') ?? '';
      if (!TRANSITION_CLASSES.has(storageClass)) throw invalid('The storage class of a transition is invalid.', 'StorageClass', storageClass);
    }
    return element('Rule', textElement('ID', id), ...rule.children.filter((child) => child.name !== 'ID').map(serialise));
  });
  return element('LifecycleConfiguration', ...written);
}

/** GetBucketLifecycle on a bucket without a configuration. */
export const noSuchLifecycle = (bucket: string) => new OssError(404, 'NoSuchLifecycle', 'No Row found in Lifecycle Table.', { BucketName: bucket });
