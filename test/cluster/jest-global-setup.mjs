// Jest loads global setup files natively, without its TypeScript transform for
// their imports, so this shim loads the TypeScript harness through tsx.
import { tsImport } from 'tsx/esm/api';

export default async function () {
  const mod = await tsImport('./global-setup.ts', import.meta.url);
  await mod.default();
}
