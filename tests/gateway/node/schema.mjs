// Validators for OpenAI's own OpenAPI schemas (shared/specs/openai-openapi.json)
// with ajv: OpenAPI 3.0 "nullable" leftovers become type [T, "null"] (or an
// anyOf with null beside a $ref), the "unixtime" format is registered, and
// $refs resolve inside components.schemas.
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(process.env.GW_NPM_DIR + '/package.json');
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats').default;

const DROP = new Set(['nullable', 'discriminator', 'example', 'examples', 'deprecated']);

function convert(node, isPropertyMap = false) {
  if (Array.isArray(node)) return node.map((n) => convert(n));
  if (!node || typeof node !== 'object') return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    if (isPropertyMap) {
      out[k] = convert(v);
      continue;
    }
    if (DROP.has(k) || k.startsWith('x-')) continue;
    out[k] = convert(v, k === 'properties' || k === 'patternProperties' || k === '$defs');
  }
  if (!isPropertyMap && node.nullable === true) {
    if (out.$ref) {
      const { $ref, ...rest } = out;
      return { ...rest, anyOf: [{ $ref }, { type: 'null' }] };
    }
    if (typeof out.type === 'string') {
      out.type = [out.type, 'null'];
      if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
      return out;
    }
    if (Array.isArray(out.type)) {
      if (!out.type.includes('null')) out.type = [...out.type, 'null'];
      return out;
    }
    return { anyOf: [out, { type: 'null' }] };
  }
  return out;
}

export function loadValidators(specPath) {
  const spec = JSON.parse(fs.readFileSync(specPath, 'utf8'));
  const schemas = convert(spec.components.schemas, true);
  // base64 embeddings: the spec only describes float arrays
  const emb = schemas.Embedding;
  schemas.EmbeddingBase64 = {
    ...emb,
    properties: { ...emb.properties, embedding: { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$' } },
  };
  const cer = schemas.CreateEmbeddingResponse;
  schemas.CreateEmbeddingResponseBase64 = {
    ...cer,
    properties: { ...cer.properties, data: { type: 'array', items: { $ref: '#/components/schemas/EmbeddingBase64' } } },
  };
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
  addFormats(ajv);
  ajv.addFormat('unixtime', { type: 'number', validate: (x) => Number.isInteger(x) });
  for (const f of ['float', 'double', 'int32', 'int64', 'binary']) ajv.addFormat(f, true);
  ajv.addSchema({ $id: 'https://agentcore.invalid/openai.json', components: { schemas } });
  const cache = new Map();
  return function validate(name, value) {
    let v = cache.get(name);
    if (!v) {
      v = ajv.compile({ $ref: `https://agentcore.invalid/openai.json#/components/schemas/${name}` });
      cache.set(name, v);
    }
    if (!v(value)) {
      const err = new Error(`${name}: ${ajv.errorsText(v.errors, { separator: '; ' })}\n` +
        JSON.stringify(value).slice(0, 2000));
      err.errors = v.errors;
      throw err;
    }
    return true;
  };
}
