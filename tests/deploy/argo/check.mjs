import fs from "fs";
import * as yaml from "js-yaml";
import * as models from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1";
// The models check types and required fields but accept misspelled keys, so
// the keys Argo CD knows are listed here for the objects we ship.
const KNOWN = {
  "ApplicationSet.spec": ["generators", "template", "strategy", "syncPolicy", "goTemplate",
    "goTemplateOptions", "preservedFields", "ignoreApplicationDifferences", "templatePatch",
    "applyNestedSelectors"],
  "Application.spec": ["project", "source", "sources", "destination", "syncPolicy",
    "ignoreDifferences", "info", "revisionHistoryLimit", "sourceHydrator"],
  "syncPolicy": ["automated", "syncOptions", "retry", "managedNamespaceMetadata"],
  "metadata": ["name", "namespace", "labels", "annotations", "finalizers"],
};
function unknownKeys(where, object, path) {
  if (!object || typeof object !== "object") return [];
  return Object.keys(object).filter((k) => !KNOWN[where].includes(k)).map((k) => `${path}.${k}`);
}
function keyProblems(doc) {
  if (doc.kind !== "ApplicationSet") return [];
  const template = doc.spec?.template ?? {};
  return [
    ...unknownKeys("metadata", doc.metadata, "metadata"),
    ...unknownKeys("ApplicationSet.spec", doc.spec, "spec"),
    ...unknownKeys("metadata", template.metadata, "spec.template.metadata"),
    ...unknownKeys("Application.spec", template.spec, "spec.template.spec"),
    ...unknownKeys("syncPolicy", template.spec?.syncPolicy, "spec.template.spec.syncPolicy"),
  ];
}
let failed = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(fs.readFileSync(file, "utf8"))) {
    if (!doc || !String(doc.apiVersion).startsWith("argoproj.io/")) continue;
    const Model = models[doc.kind];
    if (!Model) { console.error(`${file}: no model for ${doc.kind}`); failed++; continue; }
    const unknown = keyProblems(doc);
    if (unknown.length) { console.error(`FAIL ${file}: unknown keys ${unknown.join(", ")}`); failed++; continue; }
    try { new Model(doc).validate(); console.log(`OK   ${file}: ${doc.kind}/${doc.metadata.name}`); }
    catch (e) { console.error(`FAIL ${file}: ${doc.kind}/${doc.metadata && doc.metadata.name}: ${e.message}`); failed++; }
  }
}
process.exit(failed ? 1 : 0);
