import { tsImport } from 'tsx/esm/api';

export default async function () {
  const mod = await tsImport('./global-teardown.ts', import.meta.url);
  await mod.default();
}
