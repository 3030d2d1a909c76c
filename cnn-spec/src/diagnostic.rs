//! The catalogue of error messages: every message the macro and
//! `cnn-shapes` show is made here, with the arithmetic written out.

use crate::arith::{self, WindowError};
use crate::check::Axis;
use crate::keywords::{self, LayerSyntax};
use crate::model::{Pair, Volume};

pub(crate) fn empty_network(name: &str) -> String {
    format!("network `{name}` is empty: start it with `input(C, H, W)`, then its layers, e.g. `input(1, 28, 28) conv(6, 5) relu fc(10)`")
}

pub(crate) fn input_only(name: &str) -> String {
    format!("network `{name}` has an input but no layers: add at least one layer after `input(…)`")
}

pub(crate) fn missing_input(name: &str, first: &str) -> String {
    format!("network `{name}` must start with `input(C, H, W)`, found `{first}` first")
}

pub(crate) fn repeated_input() -> String {
    "`input` may appear only once, as the first layer; remove this one".to_string()
}

pub(crate) fn total_overflow(name: &str) -> String {
    format!(
        "network `{name}` is too large: its total parameter or multiply-accumulate count overflows"
    )
}

pub(crate) fn unknown_layer(word: &str) -> String {
    let known: Vec<&str> = keywords::LAYERS
        .iter()
        .map(|l| l.name)
        .filter(|&n| n != "input")
        .collect();
    match keywords::suggest_layer(word) {
        Some(name) => format!("unknown layer `{word}`; did you mean `{name}`?"),
        None => format!(
            "unknown layer `{word}`; the layers are {}",
            known.join(", ")
        ),
    }
}

pub(crate) fn positional_after_named(named: &str) -> String {
    format!(
        "positional argument after the named argument `{named}`: write positional arguments first"
    )
}

pub(crate) fn unknown_named(syntax: &LayerSyntax, name: &str) -> String {
    if syntax.named.is_empty() {
        let hint = if (syntax.name == "pool" || syntax.name == "avgpool") && name == "s" {
            format!(
                "; write the stride as the second argument: `{}(F, S)`",
                syntax.name
            )
        } else {
            format!("; write {}", syntax.usage_text())
        };
        return format!("`{}` has no named arguments{hint}", syntax.name);
    }
    let list = syntax
        .named
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(" and ");
    match keywords::nearest(name, syntax.named.iter().copied()).filter(|_| name.len() > 1) {
        Some(near) => format!("`{}` has no argument `{name}`; did you mean `{near}`? (its named arguments are {list})", syntax.name),
        None => format!("`{}` has no argument `{name}`; its named arguments are {list}", syntax.name),
    }
}

pub(crate) fn repeated_named(name: &str) -> String {
    format!("`{name}` is given twice; keep one")
}

pub(crate) fn arg_count(syntax: &LayerSyntax, found: usize) -> String {
    let required = syntax.required.len();
    let max = required + syntax.optional.len();
    let names: Vec<&str> = syntax
        .required
        .iter()
        .chain(syntax.optional)
        .copied()
        .collect();
    let expected = match (required, max) {
        (0, 0) => "no arguments".to_string(),
        (r, m) if r == m => format!(
            "{r} argument{} ({})",
            if r == 1 { "" } else { "s" },
            names.join(", ")
        ),
        (r, m) => format!("{r} or {m} arguments ({})", names.join(", ")),
    };
    let expected = if syntax.named.is_empty() {
        expected
    } else {
        expected.replacen("argument", "positional argument", 1)
    };
    format!(
        "`{}` takes {expected}, found {found}: write {}",
        syntax.name,
        syntax.usage_text()
    )
}

pub(crate) fn suffixed(digits: &str, suffix: &str) -> String {
    format!("sizes are plain integers: write `{digits}`, not `{digits}{suffix}`")
}

pub(crate) fn too_large(digits: &str, role: &str) -> String {
    format!(
        "{role} `{digits}` is too large (the limit is {})",
        usize::MAX
    )
}

pub(crate) fn zero(role: &str) -> String {
    format!("{role} must be positive, found 0")
}

pub(crate) fn pair_not_allowed(role: &str) -> String {
    format!("{role} is a single integer, not a pair")
}

pub(crate) fn same_not_allowed(role: &str) -> String {
    format!("`same` is only a padding (`p = same`); {role} must be an integer")
}

pub(crate) fn not_an_integer(text: &str, what: &str, role: &str) -> String {
    if text.is_empty() {
        return format!("{role} is missing its value after `=`");
    }
    let shown = format!("`{text}`");
    match what {
        crate::syntax::COLON => {
            let (name, value) = text.split_once(':').unwrap_or((text, ""));
            format!(
                "named arguments are written with `=`: `{} = {}`",
                name.trim(),
                value.trim()
            )
        }
        _ => format!("{role} must be a non-negative integer, found {shown} ({what})"),
    }
}

pub(crate) fn volume_too_large(name: &str, input: Option<Volume>) -> String {
    match input {
        Some(input) => format!("`{name}` on {input} gives a volume too large to allocate"),
        None => format!("`{name}` is a volume too large to allocate"),
    }
}

pub(crate) fn workspace_too_large(name: &str, len: usize) -> String {
    format!("network `{name}` needs {len} values of scratch memory for its forward pass, more than can be allocated")
}

pub(crate) fn overflow(name: &str, input: Volume) -> String {
    format!("the sizes of `{name}` on {input} overflow: its output, parameter or multiply-accumulate count does not fit in 64 bits")
}

pub(crate) fn same_even_filter(f: Pair) -> String {
    let fix = Pair {
        h: f.h | 1,
        w: f.w | 1,
    };
    format!("`p = same` needs an odd filter size, but a {}×{} filter has no centre; use F = {fix} or give the padding explicitly", f.h, f.w)
}

pub(crate) fn same_with_stride(s: Pair) -> String {
    format!("`p = same` keeps the size only at stride 1, found s = {s}; remove the stride or give the padding explicitly")
}

/// Which argument a window error points at.
pub(crate) enum Target {
    /// The stride (or, for a pool without one, the window).
    Stride,
    /// The filter or window size.
    Filter,
}

/// A sliding-window layer that does not fit, with everything needed to say
/// why and to suggest a fix.
pub(crate) struct WindowFix<'a> {
    pub(crate) keyword: &'static str,
    pub(crate) conv: bool,
    pub(crate) name: &'a str,
    pub(crate) axes: [Axis; 2],
    pub(crate) outs: [Result<usize, WindowError>; 2],
}

/// "(32 − 5 + 2·0)/2 + 1 = 14.5", the arithmetic of one axis; with
/// dilation "(32 + 2·0 − 2·(3 − 1) − 1)/2 + 1", a pool without padding
/// "(32 − 3)/2 + 1".
fn arithmetic(fix: &WindowFix<'_>, a: Axis, span: usize) -> String {
    let numerator = if a.d > 1 {
        format!("{} + 2·{} − {}·({} − 1) − 1", a.len, a.p, a.d, a.f)
    } else if fix.conv || a.p > 0 {
        format!("{} − {} + 2·{}", a.len, a.f, a.p)
    } else {
        format!("{} − {}", a.len, a.f)
    };
    format!(
        "({numerator})/{} + 1 = {}",
        a.s,
        arith::fractional_out(span, a.s)
    )
}

/// "; or `floor` rounds down to 14×14 as PyTorch does", when it can.
fn floor_fix(fix: &WindowFix<'_>) -> String {
    match fix.axes.map(|a| a.out(true)) {
        [Ok(h), Ok(w)] => format!("; or `floor` rounds down to {h}×{w}, as PyTorch does"),
        _ => String::new(),
    }
}

fn pair_of(h: usize, w: usize) -> Pair {
    Pair { h, w }
}

/// The message for a window that does not fit, and what it points at.
pub(crate) fn window_does_not_fit(fix: &WindowFix<'_>, input: Volume) -> (String, Target) {
    let [ah, aw] = fix.axes;
    let what = if fix.conv { "filter" } else { "window" };
    let head = format!("`{}` does not fit {input}", fix.name);
    let too_large = fix
        .outs
        .iter()
        .any(|o| matches!(o, Err(WindowError::TooLarge { .. })));
    if too_large {
        let padded = if ah.p > 0 || aw.p > 0 {
            let padded = |a: Axis| a.len.saturating_add(a.p.saturating_mul(2));
            format!(" padded to {}×{}", padded(ah), padded(aw))
        } else {
            String::new()
        };
        let suggestion = if fix.conv {
            // The smallest padding that makes the filter fit at this stride.
            let limit = |a: Axis| a.extent().saturating_add(a.s);
            let ph = arith::fitting_paddings(ah.len, ah.extent(), ah.s, limit(ah))
                .first()
                .copied();
            let pw = arith::fitting_paddings(aw.len, aw.extent(), aw.s, limit(aw))
                .first()
                .copied();
            match (ph, pw) {
                (Some(h), Some(w)) => format!("; p = {} would fit", pair_of(h, w)),
                _ => String::new(),
            }
        } else {
            // The largest window that fits, with its own size as stride
            // (the default) when that fits too, else with the given stride.
            let best = |a: Axis| {
                let largest = a.len.min(a.f);
                let own = arith::candidates_below(largest.saturating_add(1))
                    .find(|&f| (a.len - f).is_multiple_of(f));
                own.map(|f| (f, f)).or_else(|| {
                    arith::candidates_below(largest.saturating_add(1))
                        .find(|&f| (a.len - f).is_multiple_of(a.s))
                        .map(|f| (f, a.s))
                })
            };
            match (best(ah), best(aw)) {
                (Some((fh, sh)), Some((fw, sw))) if fh == sh && fw == sw => {
                    format!("; `{}({})` would fit", fix.keyword, pair_of(fh, fw))
                }
                (Some((fh, sh)), Some((fw, sw))) => format!(
                    "; `{}` would fit",
                    window_layer(fix.keyword, pair_of(fh, fw), pair_of(sh, sw))
                ),
                _ => String::new(),
            }
        };
        let dilated = if ah.d > 1 || aw.d > 1 {
            format!(" (dilated to {}×{})", ah.extent(), aw.extent())
        } else {
            String::new()
        };
        let message = format!(
            "{head}: the {}×{} {what}{dilated} is larger than the {}×{} input{padded}{suggestion}",
            ah.f, aw.f, input.h, input.w
        );
        return (message, Target::Filter);
    }

    // The stride does not divide the span on at least one axis.
    let uneven: Vec<(Axis, usize, &str)> = fix
        .axes
        .iter()
        .zip(fix.outs)
        .zip(["height", "width"])
        .filter_map(|((a, out), axis)| match out {
            Err(WindowError::Uneven { span }) => Some((*a, span, axis)),
            _ => None,
        })
        .collect();
    let numbers = |a: Axis| (a.len, a.f, a.s, a.p, a.d);
    let same_numbers = numbers(ah) == numbers(aw);
    let parts: Vec<String> = if same_numbers {
        uneven
            .iter()
            .take(1)
            .map(|(a, span, _)| arithmetic(fix, *a, *span))
            .collect()
    } else {
        uneven
            .iter()
            .map(|(a, span, axis)| format!("along the {axis}, {}", arithmetic(fix, *a, *span)))
            .collect()
    };
    let verb = if parts.len() == 1 {
        "is not a whole number"
    } else {
        "are not whole numbers"
    };
    let mut message = format!("{head}: {} {verb}", parts.join(" and "));

    if fix.conv {
        message.push_str(&conv_fix(fix));
    } else {
        message.push_str(&pool_fix(fix));
    }
    message.push_str(&floor_fix(fix));
    (message, Target::Stride)
}

/// Suggests a padding (or says why none fits) and the nearest strides.
fn conv_fix(fix: &WindowFix<'_>) -> String {
    let [ah, aw] = fix.axes;
    let padding_for = |a: Axis, out: &Result<usize, WindowError>| match out {
        Ok(_) => Some(a.p),
        Err(_) => arith::fitting_paddings(a.len, a.extent(), a.s, a.extent().max(a.s))
            .first()
            .copied(),
    };
    let ph = padding_for(ah, &fix.outs[0]);
    let pw = padding_for(aw, &fix.outs[1]);
    let mut text = match (ph, pw) {
        (Some(h), Some(w)) => {
            let oh = arith::window_out(ah.len, ah.extent(), ah.s, h).unwrap_or(0);
            let ow = arith::window_out(aw.len, aw.extent(), aw.s, w).unwrap_or(0);
            format!("; p = {} would fit (output {oh}×{ow})", pair_of(h, w))
        }
        _ => {
            let odd = if ph.is_none() { ah } else { aw };
            format!(
                "; no padding fixes it ({} − {} + 2P is odd)",
                odd.len,
                odd.extent()
            )
        }
    };
    let strides = fitting_strides(fix);
    if !strides.is_empty() {
        let list: Vec<String> = strides.iter().map(|s| format!("s = {s}")).collect();
        let joiner = if ph.is_some() && pw.is_some() {
            ", and so would"
        } else {
            ","
        };
        let tail = if ph.is_some() && pw.is_some() {
            ""
        } else {
            " would fit"
        };
        text.push_str(&format!("{joiner} {}{tail}", list.join(" or ")));
    }
    text
}

/// Strides (square when the given one is) nearest to the given one that fit
/// both axes with the given padding.
fn fitting_strides(fix: &WindowFix<'_>) -> Vec<Pair> {
    let [ah, aw] = fix.axes;
    if ah.s == aw.s {
        let fits = |t: usize| {
            arith::window_out(ah.len, ah.extent(), t, ah.p).is_ok()
                && arith::window_out(aw.len, aw.extent(), t, aw.p).is_ok()
        };
        let limit = ah
            .len
            .saturating_add(ah.p.saturating_mul(2))
            .max(aw.len.saturating_add(aw.p.saturating_mul(2)));
        let below = arith::candidates_below(ah.s).find(|&t| fits(t));
        let above = arith::candidates_above(ah.s, limit).find(|&t| fits(t));
        return below.into_iter().chain(above).map(Pair::square).collect();
    }
    let nearest = |a: Axis| arith::nearest_fitting_strides(a.len, a.extent(), a.s, a.p);
    let h = if fix.outs[0].is_ok() {
        vec![ah.s]
    } else {
        nearest(ah)
    };
    let w = if fix.outs[1].is_ok() {
        vec![aw.s]
    } else {
        nearest(aw)
    };
    match (h.first(), w.first()) {
        (Some(&h), Some(&w)) => vec![pair_of(h, w)],
        _ => Vec::new(),
    }
}

fn window_layer(keyword: &str, f: Pair, s: Pair) -> String {
    format!("{keyword}({f}, {s})")
}

/// Suggests nearby windows and strides for a pooling layer.
fn pool_fix(fix: &WindowFix<'_>) -> String {
    let [ah, aw] = fix.axes;
    let f = pair_of(ah.f, aw.f);
    let s = pair_of(ah.s, aw.s);
    let fits = |f: Pair, s: Pair| {
        arith::window_out(ah.len, f.h, s.h, ah.p).is_ok()
            && arith::window_out(aw.len, f.w, s.w, aw.p).is_ok()
    };
    let mut options = Vec::new();
    if f.h == f.w && s.h == s.w {
        let max = ah.len.min(aw.len);
        if let Some(smaller) = arith::candidates_below(f.h)
            .filter(|&x| x >= 2)
            .find(|&x| fits(Pair::square(x), s))
        {
            options.push(window_layer(fix.keyword, Pair::square(smaller), s));
        }
        if let Some(larger) = arith::candidates_above(f.h, max).find(|&x| fits(Pair::square(x), s))
        {
            options.push(window_layer(fix.keyword, Pair::square(larger), s));
        }
        if let Some(stride) = arith::candidates_below(s.h).find(|&x| fits(f, Pair::square(x))) {
            options.push(window_layer(fix.keyword, f, Pair::square(stride)));
        }
    }
    if options.is_empty() {
        return String::new();
    }
    let last = options.pop().unwrap_or_default();
    let list = if options.is_empty() {
        format!("`{last}`")
    } else {
        format!("`{}` or `{last}`", options.join("`, `"))
    };
    format!("; {list} would fit")
}

pub(crate) fn named_input() -> String {
    "`input` cannot be named: it holds no tensors; remove the name".to_string()
}

pub(crate) fn duplicate_name(name: &str, prefix: &str) -> String {
    let place = if prefix.is_empty() {
        "at the top of the network".to_string()
    } else {
        format!("in `{prefix}`")
    };
    let position = if name.bytes().all(|b| b.is_ascii_digit()) {
        " (an unnamed entry is named by its position, counting from 0)"
    } else {
        ""
    };
    format!("the name `{name}` is given twice {place}{position}: names are unique within their sequence, so that every tensor has its own name; rename one")
}

pub(crate) fn first_named(name: &str) -> String {
    format!("`{name}` is first given here")
}

pub(crate) fn duplicate_tensor(tensor: &str, first: &str, second: &str) -> String {
    format!("two tensors are named `{tensor}`: one of `{first}` and one of `{second}`; rename one of the layers")
}

/// The 1×1 convolution (and batch norm) that maps `input` to `output`, as
/// the shortcut a residual needs, or why none does.
fn shortcut_fix(input: Volume, output: Volume) -> String {
    let stride = |len: usize, out: usize| {
        (1..=len.max(1))
            .take(arith::SEARCH_LIMIT)
            .find(|&s| arith::window_out_floor(len, 1, s, 0) == Ok(out))
            .map(|s| (s, arith::window_out(len, 1, s, 0).is_err()))
    };
    match (stride(input.h, output.h), stride(input.w, output.w)) {
        (Some((sh, fh)), Some((sw, fw))) => {
            let s = Pair { h: sh, w: sw };
            let stride = if s == Pair::square(1) {
                String::new()
            } else {
                format!(", s = {s}")
            };
            let floor = if fh || fw { ", floor" } else { "" };
            format!(
                "`shortcut {{ conv({}, 1{stride}, bias = false{floor}) bn }}` would map {input} to {output}",
                output.c
            )
        }
        _ => format!("no strided 1×1 convolution maps {input} to {output}: change MAIN so that its output is {}×{}×{} or smaller by a whole stride", output.c, input.h, input.w),
    }
}

pub(crate) fn residual_changes_volume(path: &str, input: Volume, output: Volume) -> String {
    format!(
        "residual `{path}` adds its input {input} to its MAIN's output {output}, but the volumes differ; add a shortcut: {}",
        shortcut_fix(input, output)
    )
}

pub(crate) fn residual_branches_differ(
    path: &str,
    input: Volume,
    main: Volume,
    shortcut: Volume,
) -> String {
    format!(
        "residual `{path}` adds MAIN's {main} to its shortcut's {shortcut}, but the volumes differ; {}",
        shortcut_fix(input, main)
    )
}

pub(crate) fn residual_act(name: &str) -> String {
    format!("`residual(ACT)` takes an element-wise activation (relu, relu6, leaky_relu, sigmoid, tanh, silu, gelu, hardswish), found `{name}`")
}

pub(crate) fn floor_not_allowed(keyword: &str) -> String {
    format!("`{keyword}` has no `floor`: only conv, pool and avgpool round their output size down")
}

pub(crate) fn not_a_float(what: &str, found: &str) -> String {
    format!("{what} is a float literal such as `0.1`, found `{found}`")
}

pub(crate) fn float_out_of_range(what: &str, text: &str, range: &str) -> String {
    format!("{what} must be {range}, found `{text}`")
}

pub(crate) fn not_a_bool(what: &str, found: &str) -> String {
    format!("{what} is `true` or `false`, found `{found}`")
}

pub(crate) fn pool_padding(keyword: &str, f: Pair, p: Pair) -> String {
    let most = Pair {
        h: f.h / 2,
        w: f.w / 2,
    };
    format!("`{keyword}` pads at most half its window on each side: a {}×{} window takes p ≤ {most}, found p = {p}", f.h, f.w)
}

pub(crate) fn groups_do_not_divide(g: usize, input: Volume, k: usize) -> String {
    let divisors = |n: usize| -> Vec<String> {
        (1..=n.min(arith::SEARCH_LIMIT))
            .filter(|d| n.is_multiple_of(*d) && k.is_multiple_of(*d))
            .map(|d| d.to_string())
            .collect()
    };
    let mut which = Vec::new();
    if !input.c.is_multiple_of(g) {
        which.push(format!("the {} input channels", input.c));
    }
    if !k.is_multiple_of(g) {
        which.push(format!("the {k} filters"));
    }
    let fits = divisors(input.c);
    let shown: Vec<&str> = fits
        .iter()
        .rev()
        .take(6)
        .rev()
        .map(String::as_str)
        .collect();
    format!(
        "g = {g} groups do not divide {} (C = {}, K = {k}): each group takes C/G channels and gives K/G filters; g = {} would divide both",
        which.join(" and "),
        input.c,
        shown.join(", ")
    )
}
