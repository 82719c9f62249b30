/**
 * Where a value stops being JSON that parses back to itself, or `undefined` when it is.
 * BullMQ stores task data with `JSON.stringify`, which would silently turn a `Date` into a
 * string and drop `undefined`; a task whose input does not survive that is refused when it
 * is enqueued, not misread in a worker.
 */
export const whereNotJson = (value: unknown, path: string = "$"): string | undefined => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined
    case "number":
      return Number.isFinite(value) ? undefined : `${path} is ${value}`
    case "object": {
      if (value === null) return undefined
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const inner = whereNotJson(value[i], `${path}[${i}]`)
          if (inner !== undefined) return inner
        }
        return undefined
      }
      const proto = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) {
        return `${path} is an instance of ${proto?.constructor?.name ?? "a class"}`
      }
      for (const [key, inner] of Object.entries(value)) {
        const found = whereNotJson(inner, `${path}.${key}`)
        if (found !== undefined) return found
      }
      return undefined
    }
    case "bigint":
      return `${path} is a bigint`
    default:
      return `${path} is ${typeof value === "undefined" ? "undefined" : `a ${typeof value}`}`
  }
}
