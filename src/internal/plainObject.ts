/**
 * Whether `u` is a plain object: made by a literal, `Object.create(null)` or JSON.parse, not
 * an array nor an instance of a class. Keys, JSON checks and SQL filters accept only these,
 * since an instance would lose its class (and its meaning) on the way through JSON.
 */
export const isPlainObject = (u: unknown): u is Record<string, unknown> => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return false
  const proto = Object.getPrototypeOf(u)
  return proto === Object.prototype || proto === null
}

/** The class name of an object that is not plain, for messages (`an instance of Foo`). */
export const className = (u: object): string => {
  const name = Object.getPrototypeOf(u)?.constructor?.name
  return typeof name === "string" && name !== "" ? name : "a class"
}
