//! The page around the report: styles and the table-sorting script, inline.

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Everything before the body; `{title}` is replaced by the escaped title.
pub const PAGE_START: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1280px;padding:0 16px;color:#1d1d1f;background:#fafafa}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:8px 0}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:10px 14px;min-width:110px}
.card .v{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}.card .l{color:#666;font-size:12px}
.note{color:#666;font-size:12px}.err{color:#b3261e}
table{border-collapse:collapse;background:#fff}th,td{border:1px solid #e3e3e3;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f2f2f2;position:sticky;top:0}th[data-type]{cursor:pointer}th[data-type]:hover{background:#e6e6e6}
table.grid td{max-width:320px}table.grid ul{margin:0;padding-left:16px}td.id{font-family:ui-monospace,monospace;font-size:11px;word-break:break-all;max-width:120px}
td[data-v]{font-variant-numeric:tabular-nums;text-align:right}
.plots{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}.plots svg{background:#fff;border:1px solid #e3e3e3;border-radius:6px}
.sample{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:10px 14px;margin:10px 0}
.players{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figcaption{font-size:12px;color:#555}img.mel{image-rendering:pixelated;height:160px;border:1px solid #e3e3e3}
</style></head><body>
"#;

/// Everything after the body: a dependency-free sorter for `<th data-type>` columns.
pub const PAGE_END: &str = r#"
<script>
document.querySelectorAll("table.grid th[data-type]").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var num = th.dataset.type === "num", desc = th.dataset.dir !== "desc";
    th.dataset.dir = desc ? "desc" : "asc";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col], y = b.cells[col];
      if (num) {
        var u = parseFloat(x.dataset.v), v = parseFloat(y.dataset.v);
        if (isNaN(u)) return 1; if (isNaN(v)) return -1;
        return desc ? v - u : u - v;
      }
      return desc ? y.textContent.localeCompare(x.textContent) : x.textContent.localeCompare(y.textContent);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
</script>
</body></html>
"#;
