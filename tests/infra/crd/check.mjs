// Validates Kubernetes custom resources against the schemas of the upstream CRDs, strictly.
//
//   node check.mjs < manifests.json      (a JSON array of objects; prints a JSON report, exit 1 on any error)
//
// Two checks per object, because each misses what the other catches:
// 1. The package's compiled JSON-schema validator (types, enums, required fields, patterns, ranges). It lets
//    unknown fields through.
// 2. TypeScript: the object is written out as a literal typed with the package's interface for that kind and
//    type-checked. Excess-property checks reject every unknown field, at every depth.
// Neither evaluates the CRDs' CEL rules (x-kubernetes-validations); those are checked by the API server only.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const HERE = dirname(fileURLToPath(import.meta.url));
// API group → the package generated from that group's CRDs (versions and sources: README.md beside this file).
const PACKAGES = {
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
  "networking.gke.io": "@kubernetes-models/gke",
  "keda.sh": "@kubernetes-models/keda",
};

function modulePath(manifest) {
  const [group, version] = String(manifest.apiVersion ?? "").split("/");
  const pkg = PACKAGES[group];
  if (!pkg || !version || !/^[A-Za-z]+$/.test(manifest.kind ?? "")) return null;
  return `${pkg}/${group}/${version}/${manifest.kind}`;
}

function describe(manifest, index) {
  return { index, kind: manifest.kind ?? null, name: manifest.metadata?.name ?? null };
}

async function schemaErrors(manifests) {
  const errors = [];
  for (const [index, manifest] of manifests.entries()) {
    const path = modulePath(manifest);
    if (!path) {
      errors.push({ ...describe(manifest, index), check: "schema", message: `no schema for ${manifest.apiVersion} ${manifest.kind}` });
      continue;
    }
    let Model;
    try {
      Model = (await import(path))[manifest.kind];
    } catch (error) {
      errors.push({ ...describe(manifest, index), check: "schema", message: `no schema for ${manifest.apiVersion} ${manifest.kind}: ${error.message}` });
      continue;
    }
    try {
      new Model(manifest).validate();
    } catch (error) {
      errors.push({ ...describe(manifest, index), check: "schema", message: error.message });
    }
  }
  return errors;
}

function typeErrors(manifests) {
  const known = manifests.map((m, index) => ({ m, index, path: modulePath(m) })).filter((x) => x.path);
  if (!known.length) return [];
  const lines = [];
  const owner = []; // line number → manifest index
  for (const { m, index, path } of known) {
    lines.push(`import type { I${m.kind} as T${index} } from ${JSON.stringify(path)};`);
    owner.push(index);
  }
  for (const { m, index } of known) {
    const body = `export const m${index}: T${index} = ${JSON.stringify(m, null, 1)};`.split("\n");
    lines.push(...body);
    owner.push(...body.map(() => index));
  }
  // Inside this folder, so the compiler finds node_modules here; removed afterwards.
  const dir = mkdtempSync(join(HERE, ".check-"));
  try {
    const file = join(dir, "manifests.ts");
    writeFileSync(file, lines.join("\n"));
    writeFileSync(join(dir, "package.json"), '{"type": "module"}');
    const program = ts.createProgram([file], {
      noEmit: true,
      strict: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      skipLibCheck: true,
      types: [],
    });
    return ts.getPreEmitDiagnostics(program).map((d) => {
      const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
      const index = owner[line] ?? -1;
      const where = index >= 0 ? describe(manifests[index], index) : { index: -1, kind: null, name: null };
      return { ...where, check: "types", message: ts.flattenDiagnosticMessageText(d.messageText, "\n") };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const manifests = JSON.parse(input);
  if (!Array.isArray(manifests)) throw new Error("expected a JSON array of Kubernetes objects on stdin");
  const errors = [...(await schemaErrors(manifests)), ...typeErrors(manifests)];
  process.stdout.write(JSON.stringify({ checked: manifests.length, errors }, null, 1) + "\n");
  process.exitCode = errors.length ? 1 : 0;
}

await main();
