/**
 * Random edits of a JSON document, for the property tests of the validator (in process and through the
 * CLI): each mutation picks one field or element of the document as it is by then and replaces or
 * deletes it.
 */
import fc from "fast-check";

export interface Mutation {
  /** Which field or element, modulo how many the document has. */
  at: number;
  kind: "replace" | "delete";
  value: unknown;
}

type Container = Record<string, unknown> | unknown[];

/** One to three mutations whose new values come from `value`. */
export function mutations(value: fc.Arbitrary<unknown>): fc.Arbitrary<Mutation[]> {
  const mutation = fc.record({ at: fc.nat(), kind: fc.constantFrom("replace", "delete"), value });
  return fc.array(mutation, { minLength: 1, maxLength: 3 });
}

/** Every [container, key] of a document, depth first; object keys in `skip` are not listed. */
function slots(doc: unknown, skip: ReadonlySet<string>, out: [Container, string | number][] = []) {
  if (Array.isArray(doc)) {
    doc.forEach((value, index) => {
      out.push([doc, index]);
      slots(value, skip, out);
    });
  } else if (typeof doc === "object" && doc !== null) {
    for (const [key, value] of Object.entries(doc)) {
      if (!skip.has(key)) out.push([doc as Record<string, unknown>, key]);
      slots(value, skip, out);
    }
  }
  return out;
}

/**
 * Applies `list` to `doc` in place, in order. An array element is replaced, never deleted; fields named
 * in `skip` are never picked.
 */
export function mutate(doc: unknown, list: Mutation[], skip: ReadonlySet<string> = new Set()): void {
  for (const { at, kind, value } of list) {
    const all = slots(doc, skip);
    const [container, key] = all[at % all.length]!;
    if (kind === "delete" && !Array.isArray(container)) delete container[key as string];
    else (container as Record<string | number, unknown>)[key] = value;
  }
}
