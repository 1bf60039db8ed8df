//! The short text form of a schedule: `kind[:item,item,...]`.
//!
//! | kind | items (all optional) |
//! |---|---|
//! | `step` | `lr@epoch` pieces, e.g. `step:0.1@0,0.01@80,0.001@120`; or `preset=cifar\|imagenet` |
//! | `ft` | `preset`, `lr` |
//! | `lrw` | `preset`, `original=0.1@0;0.01@80;0.001@120`, `epochs=160` (of the original) |
//! | `slr` | `preset`, `min`, `max`, `warmup`, `drops=0.5/0.75` (or `none`), `factor` |
//! | `clr` | `preset`, `init`, `max`, `min`, `warmup`, `anneal=cos\|linear`, `momentum=0.85/0.95\|off` |
//! | `onecycle` | as `clr` but no `preset`: `init` defaults to `max / 25`, `min` to `init / 1e4` |
//! | `cosine` | `max` (default 0.1), `min` (default 0) |
//!
//! Without a `preset`, the CIFAR one applies. Parsing validates the result.

use std::fmt;
use std::str::FromStr;

use crate::{
    Anneal, Cosine, Error, MomentumCycle, OneCycle, Preset, Schedule, Slr, StepRate, StepSchedule,
};

impl FromStr for Schedule {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::Empty);
        }
        let (kind, rest) = match text.split_once(':') {
            Some((k, r)) => (k.trim(), Some(r)),
            None => (text, None),
        };
        let kind = kind.to_ascii_lowercase();
        let items: Vec<&str> = match rest {
            Some(r) => r.split(',').map(str::trim).collect(),
            None => Vec::new(),
        };
        let schedule = match kind.as_str() {
            "step" => parse_step(&items)?,
            "ft" => {
                let mut p = Params::new("ft", "preset, lr", &items)?;
                let preset = p.preset()?;
                Schedule::Ft {
                    lr: p.number("lr")?.unwrap_or(preset.original().last_lr()),
                }
            }
            "lrw" => {
                let mut p = Params::new("lrw", "preset, original, epochs", &items)?;
                let preset = p.preset()?;
                let original = match p.take("original") {
                    Some(v) => pieces("lrw", v.split(';'))?,
                    None => preset.original(),
                };
                let original_epochs = match p.take("epochs") {
                    Some(v) => v.parse().map_err(|_| Error::Malformed {
                        kind: "lrw",
                        item: format!("epochs={v}"),
                        expected: "epochs=N with a whole number of epochs",
                    })?,
                    None => preset.original_epochs(),
                };
                Schedule::Lrw {
                    original,
                    original_epochs,
                }
            }
            "slr" => {
                let mut p = Params::new(
                    "slr",
                    "preset, min, max, warmup, drops, factor, per",
                    &items,
                )?;
                let mut s = Slr::preset(p.preset()?);
                match p.take("per") {
                    None | Some("epoch") => {}
                    Some("iteration") => s.per_iteration = true,
                    Some(other) => {
                        return Err(Error::Malformed {
                            kind: "slr",
                            item: format!("per={other}"),
                            expected: "per=epoch (the reference code) or per=iteration",
                        });
                    }
                }
                set(&mut s.lr_min, p.number("min")?);
                set(&mut s.lr_max, p.number("max")?);
                set(&mut s.warmup, p.number("warmup")?);
                set(&mut s.factor, p.number("factor")?);
                if let Some(v) = p.take("drops") {
                    s.drops = if v == "none" {
                        Vec::new()
                    } else {
                        v.split('/')
                            .map(|d| number("slr", "drops", d))
                            .collect::<Result<_, _>>()?
                    };
                }
                Schedule::Slr(s)
            }
            "clr" => {
                let mut p = Params::new(
                    "clr",
                    "preset, init, max, min, warmup, anneal, momentum",
                    &items,
                )?;
                let mut c = OneCycle::clr(p.preset()?);
                set(&mut c.lr_init, p.number("init")?);
                set(&mut c.lr_max, p.number("max")?);
                set(&mut c.lr_min, p.number("min")?);
                cycle_shape(&mut p, &mut c)?;
                Schedule::Clr(c)
            }
            "onecycle" | "1cycle" | "one-cycle" => {
                let mut p = Params::new(
                    "onecycle",
                    "init, max, min, warmup, anneal, momentum",
                    &items,
                )?;
                let mut c = OneCycle::pytorch(p.number("max")?.unwrap_or(0.1));
                if let Some(init) = p.number("init")? {
                    c.lr_init = init;
                    c.lr_min = init / 1e4;
                }
                set(&mut c.lr_min, p.number("min")?);
                cycle_shape(&mut p, &mut c)?;
                Schedule::OneCycle(c)
            }
            "cosine" | "cos" => {
                let mut p = Params::new("cosine", "max, min", &items)?;
                Schedule::Cosine(Cosine {
                    lr_max: p.number("max")?.unwrap_or(0.1),
                    lr_min: p.number("min")?.unwrap_or(0.0),
                })
            }
            _ => return Err(Error::UnknownKind(kind)),
        };
        schedule.validate()?;
        Ok(schedule)
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// The `warmup`, `anneal` and `momentum` items shared by `clr` and `onecycle`.
fn cycle_shape(p: &mut Params, c: &mut OneCycle) -> Result<(), Error> {
    set(&mut c.warmup, p.number("warmup")?);
    if let Some(v) = p.take("anneal") {
        c.anneal = match v {
            "cos" | "cosine" => Anneal::Cos,
            "linear" => Anneal::Linear,
            _ => {
                return Err(Error::Malformed {
                    kind: p.kind,
                    item: format!("anneal={v}"),
                    expected: "anneal=cos or anneal=linear",
                });
            }
        };
    }
    if let Some(v) = p.take("momentum") {
        c.momentum = if v == "off" {
            None
        } else {
            let (base, max) = v.split_once('/').ok_or_else(|| Error::Malformed {
                kind: p.kind,
                item: format!("momentum={v}"),
                expected: "momentum=BASE/MAX (e.g. 0.85/0.95) or momentum=off",
            })?;
            Some(MomentumCycle {
                base: number(p.kind, "momentum", base)?,
                max: number(p.kind, "momentum", max)?,
            })
        };
    }
    Ok(())
}

fn parse_step(items: &[&str]) -> Result<Schedule, Error> {
    if let [only] = items
        && only.contains('=')
    {
        let mut p = Params::new("step", "preset, or lr@epoch pieces", items)?;
        return Ok(Schedule::Step {
            pieces: p.preset()?.original(),
        });
    }
    if items.is_empty() {
        return Ok(Schedule::original(Preset::Cifar));
    }
    Ok(Schedule::Step {
        pieces: pieces("step", items.iter().copied())?,
    })
}

/// `lr@epoch` pieces.
fn pieces<'a>(
    kind: &'static str,
    items: impl Iterator<Item = &'a str>,
) -> Result<StepSchedule, Error> {
    let mut out = Vec::new();
    for item in items {
        let item = item.trim();
        let malformed = || Error::Malformed {
            kind,
            item: item.to_string(),
            expected: "lr@epoch with a whole epoch, e.g. 0.01@80",
        };
        let (lr, epoch) = item.split_once('@').ok_or_else(malformed)?;
        let epoch = epoch.trim().parse().map_err(|_| malformed())?;
        out.push(StepRate {
            epoch,
            lr: number(kind, "lr", lr)?,
        });
    }
    StepSchedule::new(out)
}

fn number(kind: &'static str, key: &str, value: &str) -> Result<f64, Error> {
    value.trim().parse().map_err(|_| Error::NotANumber {
        kind,
        key: key.to_string(),
        value: value.to_string(),
    })
}

/// `key=value` items, checked against the keys of their kind, each given at most once.
struct Params<'a> {
    kind: &'static str,
    items: Vec<(&'a str, &'a str)>,
}

impl<'a> Params<'a> {
    fn new(kind: &'static str, expected: &'static str, items: &[&'a str]) -> Result<Self, Error> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        for item in items {
            let (k, v) = item.split_once('=').ok_or_else(|| Error::Malformed {
                kind,
                item: item.to_string(),
                expected: "key=value",
            })?;
            let (k, v) = (k.trim(), v.trim());
            if !expected.split(", ").any(|e| e == k) {
                return Err(Error::UnknownParam {
                    kind,
                    key: k.to_string(),
                    expected,
                });
            }
            if out.iter().any(|(seen, _)| *seen == k) {
                return Err(Error::DuplicateParam {
                    kind,
                    key: k.to_string(),
                });
            }
            out.push((k, v));
        }
        Ok(Self { kind, items: out })
    }

    fn take(&mut self, key: &str) -> Option<&'a str> {
        let i = self.items.iter().position(|(k, _)| *k == key)?;
        Some(self.items.remove(i).1)
    }

    fn number(&mut self, key: &str) -> Result<Option<f64>, Error> {
        self.take(key)
            .map(|v| number(self.kind, key, v))
            .transpose()
    }

    fn preset(&mut self) -> Result<Preset, Error> {
        match self.take("preset") {
            None | Some("cifar") => Ok(Preset::Cifar),
            Some("imagenet") => Ok(Preset::Imagenet),
            Some(v) => Err(Error::Malformed {
                kind: self.kind,
                item: format!("preset={v}"),
                expected: "preset=cifar or preset=imagenet",
            }),
        }
    }
}

/// Splits a comma-separated list of schedules, such as `ft,lrw,clr:max=0.05,warmup=0.05`, into
/// `["ft", "lrw", "clr:max=0.05,warmup=0.05"]`: an item without `:` that holds `=` or `@`
/// continues the schedule before it.
///
/// ```
/// let specs = schedules::split_list("ft,step:0.1@0,0.01@80,clr:max=0.05,warmup=0.05");
/// assert_eq!(specs, ["ft", "step:0.1@0,0.01@80", "clr:max=0.05,warmup=0.05"]);
/// ```
pub fn split_list(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for token in text.split(',') {
        let continues = !token.contains(':') && (token.contains('=') || token.contains('@'));
        match out.last_mut() {
            Some(last) if continues => {
                last.push(',');
                last.push_str(token);
            }
            _ => out.push(token.trim().to_string()),
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

fn write_pieces(f: &mut fmt::Formatter<'_>, s: &StepSchedule, sep: &str) -> fmt::Result {
    for (i, p) in s.pieces().iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{}@{}", p.lr, p.epoch)?;
    }
    Ok(())
}

fn write_cycle(f: &mut fmt::Formatter<'_>, kind: &str, c: &OneCycle) -> fmt::Result {
    write!(
        f,
        "{kind}:init={},max={},min={},warmup={},anneal={},momentum=",
        c.lr_init,
        c.lr_max,
        c.lr_min,
        c.warmup,
        c.anneal.name()
    )?;
    match c.momentum {
        Some(m) => write!(f, "{}/{}", m.base, m.max),
        None => f.write_str("off"),
    }
}

/// The canonical text form: every parameter spelled out, so it parses back to an equal value.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Step { pieces } => {
                f.write_str("step:")?;
                write_pieces(f, pieces, ",")
            }
            Schedule::Ft { lr } => write!(f, "ft:lr={lr}"),
            Schedule::Lrw {
                original,
                original_epochs,
            } => {
                f.write_str("lrw:original=")?;
                write_pieces(f, original, ";")?;
                write!(f, ",epochs={original_epochs}")
            }
            Schedule::Slr(s) => {
                write!(
                    f,
                    "slr:min={},max={},warmup={},factor={},drops=",
                    s.lr_min, s.lr_max, s.warmup, s.factor
                )?;
                if s.drops.is_empty() {
                    f.write_str("none")?;
                } else {
                    let drops: Vec<String> = s.drops.iter().map(f64::to_string).collect();
                    f.write_str(&drops.join("/"))?;
                }
                if s.per_iteration {
                    f.write_str(",per=iteration")?;
                }
                Ok(())
            }
            Schedule::Clr(c) => write_cycle(f, "clr", c),
            Schedule::OneCycle(c) => write_cycle(f, "onecycle", c),
            Schedule::Cosine(c) => write!(f, "cosine:max={},min={}", c.lr_max, c.lr_min),
        }
    }
}
