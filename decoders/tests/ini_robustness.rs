//! Robustness of the INI loader, expression parser, command templates and msEnvelope decoder
//! (the stable-toolchain companion of the `ini` and `ini_envelope` fuzz targets): seeded random
//! edits of the real Speeduino `[OutputChannels]` and random short inputs never panic, and what
//! loads decodes and encodes its block.

use decoders::frame::Endian;
use decoders::ini::{Command, EnvelopeDecoder, Expr, IniFile};

/// Characters that matter to the grammars, plus a few ordinary ones.
const SPECIALS: &str = "{}[]:,;\"#=()?!~<>|&^x0123456789\\$%-+*/. \nabcU";

/// A small deterministic generator (PCG-style LCG), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize
    }
}

fn seed_text() -> String {
    let path = format!(
        "{}/../fixtures/ini/speeduino.ini",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture is readable");
    let start = text.find("[OutputChannels]").expect("section exists");
    let section: String = text[start..]
        .lines()
        .take(130)
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "[Constants]\nendianness = little\n{section}\n[GaugeConfigurations]\ng = rpm, \"a\", \"b\", 0, {{1+2}}, 0,0,0,0,0,0\n"
    )
}

#[test]
fn edited_real_sections_never_panic() {
    let specials: Vec<char> = SPECIALS.chars().collect();
    let seed: Vec<char> = seed_text().chars().collect();
    let mut rng = Rng(0x1234_5678);
    let mut loaded = 0;
    for _ in 0..1500 {
        let mut text = seed.clone();
        for _ in 0..1 + rng.next() % 8 {
            let at = rng.next() % text.len();
            let c = specials[rng.next() % specials.len()];
            match rng.next() % 3 {
                0 => text.insert(at, c),
                1 => drop(text.remove(at)),
                _ => text[at] = c,
            }
        }
        let text: String = text.into_iter().collect();
        let Ok((ini, _)) = IniFile::parse("edited.ini", &text, &["CELSIUS"]) else {
            continue;
        };
        let och = &ini.output_channels;
        if och.block_size > 1 << 16 {
            continue;
        }
        let mut values = vec![0.0; och.channels().len()];
        let mut block = vec![0xFF; och.block_size];
        och.decode(&block, 1.0, &mut values)
            .expect("block and buffer fit");
        och.encode(&values, &mut block)
            .expect("block and buffer fit");
        loaded += 1;
    }
    // Most single edits land in a place the loader tolerates.
    assert!(loaded > 300, "only {loaded} of 1500 edited files loaded");
}

#[test]
fn random_short_inputs_never_panic() {
    let specials: Vec<char> = SPECIALS.chars().collect();
    let mut rng = Rng(42);
    let mut out = Vec::new();
    for _ in 0..20_000 {
        let len = rng.next() % 40;
        let text: String = (0..len)
            .map(|_| specials[rng.next() % specials.len()])
            .collect();
        if let Ok(expr) = Expr::parse(&text)
            && let Ok(program) = expr.compile(&mut |_| Some(0))
        {
            let _ = program.evaluate(&[1.0], 0.0);
        }
        if let Ok(command) = Command::parse(&text) {
            command.build(1, 2, 3, Endian::Big, &mut out);
        }
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let mut decoder = EnvelopeDecoder::new(rng.next() % 300);
        decoder.handle_bytes(&bytes);
        while let Ok(Some(_)) | Err(_) = decoder.poll_payload() {}
        assert!(decoder.pending() <= bytes.len());
    }
}
