// hello-js: {"name": "Ada"} -> {"greeting": "Hello, Ada!"}, as a component of
// the world ameide:extension/extension (wit/extension). Build it with
// `extensions-runtime build examples/src/hello-js` (see README.md).
import { log } from "ameide:extension/host@0.1.0";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// `handle` returns the answer's bytes; throwing {code, message} is the
// guest error the caller receives as GUEST_ERROR "code: message".
export function handle(input) {
  let request;
  try {
    request = JSON.parse(decoder.decode(input) || "{}");
  } catch (err) {
    throw { code: "invalid_input", message: `input is not JSON: ${err.message}` };
  }
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    throw { code: "invalid_input", message: "input must be a JSON object" };
  }
  const name = typeof request.name === "string" ? request.name : "World";
  log("info", `greeting ${name}`);
  return encoder.encode(JSON.stringify({ greeting: `Hello, ${name}!` }));
}
