import { buildCli } from "./e2e/build.js";

/** End-to-end tests run the built CLI (`node dist/main.js`): build it once, before any test file starts. */
export default function setup(): void {
  buildCli();
}
