// Validates ServiceMonitor and PrometheusRule objects (JSON files) against the
// Prometheus Operator's schemas shipped in npm @kubernetes-models/prometheus-operator.
// Usage: node validate-prometheus-operator.mjs NODE_MODULES_DIR FILE.json...
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, ...files] = process.argv.slice(2);
if (!modules || files.length === 0) {
  console.error("usage: validate-prometheus-operator.mjs NODE_MODULES_DIR FILE.json...");
  process.exit(2);
}
const kinds = {};
for (const kind of ["ServiceMonitor", "PrometheusRule", "PodMonitor"]) {
  const path = join(modules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1", `${kind}.js`);
  kinds[kind] = (await import(pathToFileURL(path).href))[kind];
}
let failed = 0;
for (const file of files) {
  const doc = JSON.parse(readFileSync(file, "utf8"));
  const model = kinds[doc.kind];
  const name = `${doc.kind}/${doc.metadata?.name}`;
  if (doc.apiVersion !== "monitoring.coreos.com/v1" || !model) {
    console.error(`${file}: ${name}: no schema for ${doc.apiVersion} ${doc.kind}`);
    failed++;
    continue;
  }
  try {
    new model(doc).validate();
  } catch (e) {
    console.error(`${file}: ${name}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
