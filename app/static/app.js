// Review queue keyboard shortcuts: j/k move, a approve, r reject, e edit, f flag for re-analysis.
// Each action is a plain form post (CSRF token included), so the page works without this script too.
(function () {
  const items = Array.from(document.querySelectorAll(".queue-item"));
  if (!items.length) return;
  let current = 0;
  const focus = (i) => {
    current = Math.max(0, Math.min(items.length - 1, i));
    items.forEach((el, n) => el.classList.toggle("active", n === current));
    items[current].scrollIntoView({ block: "nearest" });
  };
  const submit = (action) => {
    const form = items[current].querySelector(`form[data-action="${action}"]`);
    if (form) form.requestSubmit();
  };
  document.addEventListener("keydown", (ev) => {
    if (ev.target.matches("input, textarea, select")) return;
    const keys = { j: () => focus(current + 1), k: () => focus(current - 1), a: () => submit("approve"),
                   r: () => submit("reject"), f: () => submit("flag"),
                   e: () => { const input = items[current].querySelector("input[name=tag]"); if (input) input.focus(); } };
    if (keys[ev.key]) { ev.preventDefault(); keys[ev.key](); }
  });
  focus(0);
})();
