/**
 * The workflow code a worker runs: bundled once when the package is built (`dist/workflow-bundle.js`),
 * so a worker from the compiled package starts in about a second instead of bundling the workflows
 * with webpack at every start (several seconds and a few hundred MB of memory).
 * @module
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode, type Logger } from '@temporalio/worker';

/** Path of the workflows module, for `workflowsPath` (the TypeScript sources, or the compiled JavaScript). */
export const WORKFLOWS_PATH = ((): string => {
  const base = path.resolve(__dirname, '..', '..', 'workflows', 'index');
  return existsSync(`${base}.ts`) ? `${base}.ts` : `${base}.js`;
})();

/** Where the build puts the prebuilt bundle: the package's build folder. */
export const PREBUILT_BUNDLE_PATH = path.resolve(__dirname, '..', '..', 'workflow-bundle.js');

/** What the build records beside the bundle. */
interface BundleInfo {
  /** `@temporalio/workflow` version the bundle was made with: the worker must run the same. */
  sdkVersion: string;
  builtAt: string;
}

function installedSdkVersion(): string {
  return (JSON.parse(readFileSync(require.resolve('@temporalio/workflow/package.json'), 'utf8')) as { version: string }).version;
}

/**
 * The prebuilt bundle, when this is the compiled package and the bundle was made with the SDK
 * version installed beside it; otherwise `undefined` (the worker then bundles `WORKFLOWS_PATH` at
 * start), with `why` saying which. From the TypeScript sources (development, tests) it is never
 * used, so an edited workflow is never run from a stale bundle.
 */
export function prebuiltWorkflowBundle(): { bundle?: { codePath: string }; why: string } {
  if (!__filename.endsWith('.js')) return { why: 'running from the TypeScript sources: bundling the workflows now' };
  const infoPath = PREBUILT_BUNDLE_PATH.replace(/\.js$/, '.json');
  if (!existsSync(PREBUILT_BUNDLE_PATH) || !existsSync(infoPath)) {
    return { why: `no prebuilt bundle at ${PREBUILT_BUNDLE_PATH} (npm run build makes it): bundling the workflows now` };
  }
  const info = JSON.parse(readFileSync(infoPath, 'utf8')) as BundleInfo;
  const installed = installedSdkVersion();
  if (info.sdkVersion !== installed) {
    return { why: `the prebuilt bundle was made with @temporalio/workflow ${info.sdkVersion}, ${installed} is installed: bundling the workflows now` };
  }
  return { bundle: { codePath: PREBUILT_BUNDLE_PATH }, why: `prebuilt workflow bundle (${info.builtAt}, SDK ${info.sdkVersion})` };
}

/** Bundles the workflows into `outFile` (the build step), recording the SDK version beside it. */
export async function writeWorkflowBundle(outFile: string = PREBUILT_BUNDLE_PATH, logger?: Logger): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, ...(logger ? { logger } : {}) });
  writeFileSync(outFile, code);
  const info: BundleInfo = { sdkVersion: installedSdkVersion(), builtAt: new Date().toISOString() };
  writeFileSync(outFile.replace(/\.js$/, '.json'), `${JSON.stringify(info, null, 2)}\n`);
}
