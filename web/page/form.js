// The settings form, generated from the scene's JSON Schema (GET /v1/scenes): a control per property, with its
// title as the label, its description as the help text, its default as the starting value. The browser's own
// checks are off (novalidate): the server's words are the ones shown, from the preview call that follows
// every change, so the form and the submission can never disagree about what is valid.

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children);
  return node;
};
export { el };

const RADIO_LIMIT = 6; // enums with at most this many choices are shown as buttons, longer ones as a list
const BIG = 2 ** 31; // integer ranges this wide are seeds: a number box with a dice button

export class SettingsForm {
  constructor(container, onChange) {
    this.container = container;
    this.onChange = onChange;
    this.schema = null;
    this.readers = new Map(); // name -> () => value
    this.writers = new Map(); // name -> (value) => void
  }

  render(schema) {
    this.schema = schema;
    this.container.replaceChildren();
    this.readers.clear();
    this.writers.clear();
    for (const [name, prop] of Object.entries(schema.properties || {})) {
      this.container.append(this.field(name, prop));
    }
    this.reset();
  }

  field(name, prop) {
    const id = `f-${name}`;
    const helpId = `${id}-help`;
    const errorId = `${id}-error`;
    const title = prop.title || name;
    const describedBy = `${helpId} ${errorId}`;
    const help = el("p", { class: "help", id: helpId, text: describe(prop) });
    const error = el("p", { class: "field-error", id: errorId, "aria-live": "polite" });
    const wrap = el("div", { class: "field", "data-field": `settings.${name}` });
    const changed = () => this.onChange(name);

    if (Array.isArray(prop.enum) && prop.type === "string" && prop.enum.length <= RADIO_LIMIT) {
      const group = el("div", { class: "choices", role: "radiogroup", "aria-labelledby": `${id}-label`,
        "aria-describedby": describedBy });
      for (const option of prop.enum) {
        const input = el("input", { type: "radio", name, value: option, id: `${id}-${option}` });
        input.addEventListener("change", changed);
        group.append(el("label", { class: "choice", for: `${id}-${option}` }, input, el("span", { text: option })));
      }
      this.readers.set(name, () => group.querySelector("input:checked")?.value ?? null);
      this.writers.set(name, (v) => {
        for (const input of group.querySelectorAll("input")) input.checked = input.value === String(v);
      });
      wrap.append(el("span", { class: "label", id: `${id}-label`, text: title }), help, group, error);
      return wrap;
    }

    if (Array.isArray(prop.enum)) {
      const select = el("select", { id, name, "aria-describedby": describedBy });
      for (const option of prop.enum) select.append(el("option", { value: String(option), text: String(option) }));
      select.addEventListener("change", changed);
      const numeric = prop.type === "integer" || prop.type === "number";
      this.readers.set(name, () => (numeric ? Number(select.value) : select.value));
      this.writers.set(name, (v) => (select.value = String(v)));
      wrap.append(el("label", { for: id, text: title }), help, select, error);
      return wrap;
    }

    if (prop.type === "boolean") {
      const box = el("input", { type: "checkbox", id, name, "aria-describedby": describedBy });
      box.addEventListener("change", changed);
      this.readers.set(name, () => box.checked);
      this.writers.set(name, (v) => (box.checked = Boolean(v)));
      wrap.append(el("label", { class: "check", for: id }, box, el("span", { text: title })), help, error);
      return wrap;
    }

    if (prop.type === "integer" || prop.type === "number") {
      const number = el("input", {
        type: "number", id, name, inputmode: prop.type === "integer" ? "numeric" : "decimal",
        min: prop.minimum, max: prop.maximum, step: prop.multipleOf || (prop.type === "integer" ? 1 : "any"),
        "aria-describedby": describedBy,
      });
      const row = el("div", { class: "number-row" });
      const read = () => {
        const text = number.value.trim();
        if (text === "") return null; // sent as null: the server says what it needs
        const value = Number(text);
        return Number.isFinite(value) ? value : text;
      };
      this.readers.set(name, read);
      const span = (prop.maximum ?? Infinity) - (prop.minimum ?? -Infinity);
      let range = null;
      if (Number.isFinite(span) && span < BIG) {
        range = el("input", { type: "range", min: prop.minimum, max: prop.maximum,
          step: prop.multipleOf || 1, "aria-label": `${title} slider`, tabindex: "-1" });
        range.addEventListener("input", () => {
          number.value = range.value;
          changed();
        });
        row.append(range);
      }
      number.addEventListener("input", () => {
        if (range && number.value !== "") range.value = number.value;
        changed();
      });
      row.append(number);
      if (Number.isFinite(span) && span >= BIG) {
        const dice = el("button", { type: "button", class: "ghost small", "aria-label": `New random ${title.toLowerCase()}` },
          "New");
        dice.addEventListener("click", () => {
          this.writers.get(name)(randomInt(prop.minimum ?? 0, Math.min(prop.maximum ?? BIG, 2 ** 32 - 1)));
          changed();
        });
        row.append(dice);
      }
      this.writers.set(name, (v) => {
        number.value = v ?? "";
        if (range) range.value = v ?? prop.default;
      });
      wrap.append(el("label", { for: id, text: title }), help, row, error);
      return wrap;
    }

    const text = el("input", { type: "text", id, name, maxlength: prop.maxLength, "aria-describedby": describedBy });
    text.addEventListener("input", changed);
    this.readers.set(name, () => text.value);
    this.writers.set(name, (v) => (text.value = v ?? ""));
    wrap.append(el("label", { for: id, text: title }), help, text, error);
    return wrap;
  }

  values() {
    const out = {};
    for (const [name, read] of this.readers) out[name] = read();
    return out;
  }

  set(values) {
    for (const [name, value] of Object.entries(values)) this.writers.get(name)?.(value);
  }

  reset() {
    const defaults = {};
    for (const [name, prop] of Object.entries(this.schema.properties || {})) defaults[name] = prop.default;
    this.set(defaults);
  }

  // New looks within the schema: every choice and every narrow range is drawn at random, seeds too; settings
  // that only change the file (size, frame count, frame rate) keep their values, so a surprise costs no more.
  surprise() {
    const values = {};
    for (const [name, prop] of Object.entries(this.schema.properties || {})) {
      if (Array.isArray(prop.enum) && prop.type === "string") values[name] = pick(prop.enum);
      else if (prop.type === "integer" && !prop.enum && prop.minimum !== undefined && prop.maximum !== undefined) {
        const span = prop.maximum - prop.minimum;
        if (span >= BIG) values[name] = randomInt(prop.minimum, Math.min(prop.maximum, 2 ** 32 - 1));
        else if (span <= 100 && !prop.multipleOf) values[name] = randomInt(prop.minimum, prop.maximum);
      }
    }
    this.set(values);
  }

  // Shows the server's words under the field it names ("settings.count: must be at most 64"); other fields clear.
  showErrors(field, message) {
    let shown = false;
    for (const wrap of this.container.querySelectorAll("[data-field]")) {
      const mine = field && wrap.dataset.field === field;
      const slot = wrap.querySelector(".field-error");
      // Under its own field the server's sentence drops the field's name: "settings.count: must be at most 64".
      const words = mine && message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message;
      slot.textContent = mine ? words.charAt(0).toUpperCase() + words.slice(1) + "." : "";
      wrap.classList.toggle("invalid", Boolean(mine));
      for (const input of wrap.querySelectorAll("input, select")) {
        if (mine) input.setAttribute("aria-invalid", "true");
        else input.removeAttribute("aria-invalid");
      }
      shown = shown || mine;
    }
    return shown;
  }

  focusField(field) {
    const wrap = this.container.querySelector(`[data-field="${CSS.escape(field)}"]`);
    wrap?.querySelector("input:not([type=range]), select")?.focus();
  }
}

function describe(prop) {
  const parts = [prop.description || ""];
  if (prop.minimum !== undefined && prop.maximum !== undefined && prop.maximum - prop.minimum < BIG) {
    parts.push(`${prop.minimum}–${prop.maximum}${prop.multipleOf ? `, a multiple of ${prop.multipleOf}` : ""}.`);
  }
  if (prop.default !== undefined) parts.push(`Default: ${prop.default}.`);
  return parts.filter(Boolean).join(" ");
}

const pick = (items) => items[Math.floor(Math.random() * items.length)];
function randomInt(min, max) {
  const buf = new Uint32Array(1);
  crypto.getRandomValues(buf);
  return min + (buf[0] % (max - min + 1));
}
