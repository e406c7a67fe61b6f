// {{name}}: an extension in JavaScript, a component of ameide:extension/extension.
// Implement `handle`: bytes in (the caller's JSON), bytes out. See README.md.
import { config, log } from "ameide:extension/host@0.1.0";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function handle(input) {
  let request;
  try {
    request = JSON.parse(decoder.decode(input) || "{}");
  } catch (err) {
    // A thrown {code, message} reaches the caller as GUEST_ERROR "code: message".
    throw { code: "invalid_input", message: `input is not JSON: ${err.message}` };
  }
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    throw { code: "invalid_input", message: "input must be a JSON object" };
  }
  const settings = JSON.parse(config()); // the definition's "config"
  const greeting = settings.greeting ?? "Hello";
  const name = request.name ?? "World";
  log("info", `greeting ${name}`);
  return encoder.encode(JSON.stringify({ message: `${greeting}, ${name}!` }));
}
