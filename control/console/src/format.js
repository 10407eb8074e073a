// How numbers, rates and dates are shown: in the browser's locale and time zone.
const numbers = new Intl.NumberFormat();
const dates = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function count(value) {
  return value === null || value === undefined ? "–" : numbers.format(value);
}

// A rate from the API (0..1, or null when it cannot be computed).
export function rate(value) {
  return value === null || value === undefined ? "n/a" : `${(value * 100).toFixed(1)}%`;
}

export function when(value) {
  return value ? dates.format(new Date(value)) : "–";
}

export function label(value) {
  return value ? String(value).replaceAll("_", " ") : "–";
}
