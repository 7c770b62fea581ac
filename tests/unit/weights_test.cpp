// The weights library: every format read against independent writers (Debian's torch.save and a
// safetensors writer in tests/fixtures/checkpoints.py), and every lie a file can tell refused by
// name without reading past it.
#include "test_support.h"

#include <reel/error.h>
#include <reel/weights.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

namespace fs = std::filesystem;
using namespace reel;
using reel::weights::Checkpoint;

namespace {

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const fs::path& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A safetensors file with this header text and `data_bytes` zero bytes of data.
fs::path safetensors_with_header(const std::string& header, std::size_t data_bytes, std::uint64_t claimed = 0) {
  static int n = 0;
  fs::path file = test::temp_dir("st") / ("h" + std::to_string(n++) + ".safetensors");
  std::uint64_t size = claimed ? claimed : header.size();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((size >> (8 * i)) & 0xFF);
  spit(file, bytes + header + std::string(data_bytes, '\0'));
  return file;
}

// The message of the BadInputError that opening (and reading every tensor of) `file` throws.
std::string refusal(const fs::path& file) {
  try {
    Checkpoint c = weights::open_checkpoint(file);
    for (std::size_t i = 0; i < c.tensors().size(); ++i) c.read(i);
  } catch (const BadInputError& e) {
    return e.what();
  }
  ADD_FAILURE() << file << " was accepted";
  return {};
}

std::map<std::string, at::Tensor> by_name(const Checkpoint& c) {
  std::map<std::string, at::Tensor> out;
  auto names = weights::normalized_names(c);
  for (std::size_t i = 0; i < names.size(); ++i)
    if (!names[i].empty()) out[names[i]] = c.read(i);
  return out;
}

std::vector<double> values(const at::Tensor& t) {
  at::Tensor d = t.to(at::kDouble).contiguous().flatten();
  return {d.data_ptr<double>(), d.data_ptr<double>() + d.numel()};
}

nlohmann::json read_json(const fs::path& file) { return nlohmann::json::parse(slurp(file)); }

}  // namespace

TEST(SafetensorsTest, RoundTripsEveryTorchDtype) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto type : {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble, at::kLong, at::kInt, at::kShort, at::kChar,
                    at::kByte, at::kBool})
    tensors.emplace_back(std::string("t_") + c10::toString(type), at::arange(12).reshape({3, 4}).remainder(5).to(type));
  tensors.emplace_back("module.transposed", at::arange(6, at::kFloat).reshape({2, 3}).t());
  fs::path file = test::temp_dir() / "all.safetensors";
  weights::save_safetensors(file, tensors, false);
  Checkpoint c = weights::open_checkpoint(file);
  EXPECT_EQ(c.format(), "safetensors");
  auto read = by_name(c);
  ASSERT_EQ(read.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    std::string key = name == "module.transposed" ? "transposed" : name;  // module. is stripped
    ASSERT_TRUE(read.count(key)) << key;
    EXPECT_EQ(read[key].scalar_type(), tensor.scalar_type()) << key;
    EXPECT_TRUE(at::equal(read[key], tensor)) << key;
  }
  EXPECT_THROW(weights::save_safetensors(file, tensors, false), IoError);  // never replaced silently
}

TEST(SafetensorsTest, ANameThatIsNotUtf8IsRefusedAndNothingIsWritten) {
  fs::path file = test::temp_dir() / "bytes.safetensors";
  EXPECT_THROW(weights::save_safetensors(file, {{std::string("w\xff"), at::zeros({1})}}, false), BadInputError);
  EXPECT_FALSE(fs::exists(file));
}

TEST(SafetensorsTest, ReadsEveryDtypeOfTheFormatFromAnIndependentWriter) {
  fs::path file = test::temp_dir() / "dtypes.safetensors";
  test::python_fixture("safetensors-dtypes " + file.string());
  auto expected = read_json(file.string() + ".json");
  auto read = by_name(weights::open_checkpoint(file));
  ASSERT_EQ(read.size(), expected.size());
  for (const auto& [name, want] : expected.items()) {
    ASSERT_TRUE(read.count(name)) << name;
    auto got = values(read[name]);
    ASSERT_EQ(got.size(), want.size()) << name;
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i].get<double>()) << name << "[" << i << "]";
  }
  EXPECT_EQ(read["u64"].scalar_type(), at::kLong);
  EXPECT_EQ(read["u64_big"].item<std::int64_t>(), (std::int64_t{1} << 62) + 5);
}

TEST(SafetensorsTest, RefusesHeadersThatLieByName) {
  const std::string ok = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  EXPECT_NE(refusal(safetensors_with_header("{" + ok + "}", 8, 1ull << 40)).find("header claims"), std::string::npos);
  EXPECT_NE(refusal(safetensors_with_header("{\"w\": [", 8)).find("not a JSON object"), std::string::npos);
  EXPECT_NE(refusal(safetensors_with_header("{" + ok + "}", 4)).find("tensor 'w': data_offsets [0, 8] lie outside"),
            std::string::npos);
  EXPECT_NE(refusal(safetensors_with_header(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8))
                .find("tensor 'w': shape [3] of F32 needs a different size"),
            std::string::npos);
  EXPECT_NE(refusal(safetensors_with_header(
                        R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                        16))
                .find("'a' and 'b' overlap"),
            std::string::npos);
  EXPECT_NE(refusal(safetensors_with_header(R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8))
                .find("dtype 'Q4'"),
            std::string::npos);
  EXPECT_NE(refusal(safetensors_with_header(
                        R"({"w":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,8]}})", 8))
                .find("tensor 'w'"),
            std::string::npos);
  // 2^61 elements of 8 bytes: a size that wraps to 0 in 64 bits must not match 0 data bytes.
  EXPECT_NE(refusal(safetensors_with_header(R"({"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})", 8))
                .find("tensor 'w'"),
            std::string::npos);
  EXPECT_NE(refusal(safetensors_with_header(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8))
                .find("tensor 'w'"),
            std::string::npos);
}

// A header of 0x80 + 256 k bytes makes the file start with 0x80, as a pickle does: still safetensors.
TEST(SafetensorsTest, AHeaderLengthStartingWith0x80IsNotTakenForAPickle) {
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header += std::string(0x180 - header.size(), ' ');
  Checkpoint c = weights::open_checkpoint(safetensors_with_header(header, 8));
  EXPECT_EQ(c.format(), "safetensors");
  ASSERT_EQ(c.tensors().size(), 1u);
  EXPECT_EQ(c.tensors()[0].name, "w");
}

TEST(SafetensorsTest, ADeeplyNestedShapeIsRefusedWithoutRecursion) {
  const int depth = 100000;
  std::string header = R"({"w":{"dtype":"F32","shape":)" + std::string(depth, '[') + std::string(depth, ']') +
                       R"(,"data_offsets":[0,0]}})";
  EXPECT_NE(refusal(safetensors_with_header(header, 0)).find("shape must be a list"), std::string::npos);
}

TEST(SafetensorsTest, ReadsShardedModelsThroughTheirIndex) {
  fs::path dir = test::temp_dir("shards");
  test::python_fixture("sharded " + dir.string());
  Checkpoint c = weights::open_checkpoint(dir / "model.safetensors.index.json");
  auto read = by_name(c);
  ASSERT_EQ(read.size(), 3u);
  EXPECT_TRUE(at::equal(read["layer.0.weight"], at::arange(6, at::kFloat).reshape({2, 3})));
  EXPECT_TRUE(at::equal(read["layer.1.weight"], at::arange(4, at::kFloat).to(at::kHalf)));
  EXPECT_EQ(c.parameter_count(), 11u);

  auto index = read_json(dir / "model.safetensors.index.json");
  index["weight_map"]["layer.1.bias"] = "model-00001-of-00002.safetensors";  // a shard that lacks it
  test::write_file(dir / "bad.safetensors.index.json", index.dump());
  EXPECT_NE(refusal(dir / "bad.safetensors.index.json").find("'layer.1.bias' is listed in shard"), std::string::npos);
  index["weight_map"]["layer.1.bias"] = "../elsewhere.safetensors";
  test::write_file(dir / "escape.safetensors.index.json", index.dump());
  EXPECT_NE(refusal(dir / "escape.safetensors.index.json").find("not a file name beside the index"), std::string::npos);
}

TEST(PyTorchCheckpointTest, ReadsWhatTorchSaveWrites) {
  fs::path file = test::temp_dir() / "state.pth";
  test::python_fixture("state " + file.string());
  Checkpoint c = weights::open_checkpoint(file);
  EXPECT_EQ(c.format(), "pytorch");
  auto read = by_name(c);  // params_ema unwrapped; the other wrapper's tensors left out
  auto expected = read_json(file.string() + ".json");
  ASSERT_EQ(read.size(), expected.size());
  for (const auto& [name, want] : expected.items()) {
    ASSERT_TRUE(read.count(name)) << name;
    auto flat = want.flatten();
    std::vector<double> wanted;
    std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& j) {
      if (j.is_array())
        for (const auto& x : j) walk(x);
      else
        wanted.push_back(j.get<double>());
    };
    walk(want);
    EXPECT_EQ(values(read[name]), wanted) << name;
  }
  EXPECT_EQ(read["half"].scalar_type(), at::kHalf);
  EXPECT_EQ(read["bf16"].scalar_type(), at::kBFloat16);
  EXPECT_EQ(read["steps"].scalar_type(), at::kLong);
  EXPECT_EQ(read["mask"].scalar_type(), at::kBool);
  EXPECT_EQ(read["conv.weight_t"].sizes(), (std::vector<std::int64_t>{6, 4}));
}

TEST(PyTorchCheckpointTest, RefusesAForeignGlobalAndRunsNothing) {
  fs::path file = test::temp_dir() / "evil.pth";
  test::python_fixture("evil " + file.string());
  std::string message = refusal(file);
  EXPECT_NE(message.find("global 'posix.system'"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(file.string() + ".pwned"));
}

TEST(PyTorchCheckpointTest, RefusesDeepNestingWithoutOverflowingTheStack) {
  fs::path file = test::temp_dir() / "deep.pth";
  test::python_fixture("deep " + file.string());
  EXPECT_NE(refusal(file).find("deeper than 32 levels"), std::string::npos);
}

TEST(PyTorchCheckpointTest, RefusesAContainerReachedTwiceInsteadOfExpandingIt) {
  fs::path file = test::temp_dir() / "shared.pth";
  test::python_fixture("shared " + file.string());
  EXPECT_NE(refusal(file).find("appears twice"), std::string::npos);
}

// The unpickled list holds itself: a cycle of shared pointers that would outlive the refusal
// unless the reader breaks it (the sanitizer build's LeakSanitizer reports such a leak).
TEST(PyTorchCheckpointTest, AListHoldingItselfIsRefusedAndFreed) {
  fs::path file = test::temp_dir() / "cyclic.pth";
  test::python_fixture("cyclic " + file.string());
  EXPECT_NE(refusal(file).find("'loop.0' is a container that appears twice"), std::string::npos) << refusal(file);
}

TEST(PyTorchCheckpointTest, RefusesTheLegacyFormatSayingHowToResave) {
  fs::path file = test::temp_dir() / "legacy.pth";
  test::python_fixture("legacy " + file.string());
  try {
    weights::open_checkpoint(file);
    FAIL() << "accepted";
  } catch (const BadInputError& e) {
    EXPECT_NE(std::string(e.what()).find("legacy format"), std::string::npos);
    EXPECT_NE(e.hint().find("torch.save(torch.load("), std::string::npos);
  }
}

TEST(PyTorchCheckpointTest, TellsATorchScriptProgramFromACheckpoint) {
  fs::path file = test::temp_dir() / "module.pt";
  test::python_fixture("torchscript " + file.string());
  EXPECT_TRUE(weights::is_torchscript(file));
  EXPECT_NE(refusal(file).find("TorchScript program"), std::string::npos);
}

TEST(PyTorchCheckpointTest, EveryTruncationIsAnErrorNeverACrash) {
  fs::path file = test::temp_dir() / "state.pth";
  test::python_fixture("state " + file.string());
  const std::string bytes = slurp(file);
  int refused = 0;
  for (std::size_t length = 0; length < bytes.size(); length += 7) {
    fs::path cut = test::temp_dir() / "cut.pth";
    spit(cut, bytes.substr(0, length));
    try {
      Checkpoint c = weights::open_checkpoint(cut);
      for (std::size_t i = 0; i < c.tensors().size(); ++i) c.read(i);
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_EQ(refused, static_cast<int>((bytes.size() + 6) / 7));  // zip's directory is at the end: every cut fails
}

TEST(CheckpointMatchTest, ReportsEveryMismatchInOneError) {
  std::vector<std::pair<std::string, at::Tensor>> tensors{{"params_ema.a", at::zeros({2})},
                                                          {"params_ema.b", at::zeros({3})},
                                                          {"params_ema.extra", at::zeros({1})}};
  fs::path file = test::temp_dir() / "m.safetensors";
  weights::save_safetensors(file, tensors, false);
  weights::Expected expected{{"a", {2}}, {"b", {4}}, {"c", {1}}};
  try {
    weights::match(weights::open_checkpoint(file), expected, "TestNet");
    FAIL() << "matched";
  } catch (const BadInputError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("does not match TestNet"), std::string::npos) << m;
    EXPECT_NE(m.find("missing 1 (c)"), std::string::npos) << m;
    EXPECT_NE(m.find("unexpected 1 (extra)"), std::string::npos) << m;
    EXPECT_NE(m.find("wrong shape 1 (b is [3], expected [4])"), std::string::npos) << m;
  }
  auto matched = weights::match(weights::open_checkpoint(file), {{"b", {3}}, {"a", {2}}, {"extra", {1}}}, "TestNet");
  ASSERT_EQ(matched.size(), 3u);
  EXPECT_EQ(matched[0].first, "b");  // in the network's order
}

TEST(ModelNamesTest, AMissingModelListsWhereItLooked) {
  fs::path dir = test::temp_dir("models");
  test::write_file(dir / "present.pth", "x");
  weights::set_model_dirs({dir});
  EXPECT_EQ(weights::resolve_model("present"), dir / "present.pth");
  try {
    weights::resolve_model("absent");
    FAIL() << "resolved";
  } catch (const InvalidParamError& e) {
    EXPECT_EQ(e.param(), "model");
    EXPECT_NE(std::string(e.what()).find((dir / "absent").string() + "{.safetensors,.pth"), std::string::npos)
        << e.what();
  }
  weights::set_model_dirs({});
}

TEST(NcnnTest, RefusesATruncatedBinNamingTheLayer) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4fast.bin");
  fs::path models = test::shared_dir() / "models/realesrgan";
  fs::path dir = test::temp_dir("ncnn");
  fs::copy_file(models / "realesrgan-x4fast.param", dir / "m.param");
  spit(dir / "m.bin", slurp(models / "realesrgan-x4fast.bin").substr(0, 1'000'000));
  std::string message = refusal(dir / "m.param");
  EXPECT_NE(message.find("(Convolution) needs"), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;

  spit(dir / "m.bin", slurp(models / "realesrgan-x4fast.bin") + "tail");
  EXPECT_NE(refusal(dir / "m.param").find("4 bytes left after the last layer"), std::string::npos);
}

TEST(NcnnTest, AnOddFp16BlobAtTheEndIsNotReadPast) {
  // 2045 fp16 values take 4092 bytes once aligned; the file stops 2 bytes short of that.
  fs::path dir = test::temp_dir("ncnn-odd");
  test::write_file(dir / "m.param", "7767517\n2 2\nConvolution c0 0 1 b0 0=1 1=1 6=2045\n"
                                      "Convolution c1 1 1 b0 b1 0=1 1=1 6=1\n");
  std::string bin("\x47\x6b\x30\x01", 4);
  bin += std::string(4090, '\0');
  spit(dir / "m.bin", bin);
  EXPECT_NE(refusal(dir / "m.param").find("layer 0 'c0' (Convolution) needs"), std::string::npos);
}

TEST(NcnnTest, AFileOfAnotherNetworkNamesTheFirstLayerThatDiffers) {
  REEL_REQUIRE_SHARED("models/realesrgan/realesrgan-x4fast.param");
  Checkpoint c = weights::open_checkpoint(test::shared_dir() / "models/realesrgan/realesrgan-x4fast.param");
  EXPECT_FALSE(c.keyed());
  EXPECT_EQ(c.parameter_count(), 1'213'296u);  // the README's count
  weights::Expected rrdb{{"conv_first.weight", {64, 3, 3, 3}},
                         {"conv_first.bias", {64}},
                         {"body.0.rdb1.conv1.weight", {32, 64, 3, 3}}};
  try {
    weights::match(c, rrdb, "RRDBNet");
    FAIL() << "matched";
  } catch (const BadInputError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("layer 3 'PRelu_1' (PReLU) does not match RRDBNet"), std::string::npos) << m;
    EXPECT_NE(m.find("body.0.rdb1.conv1.weight [32, 64, 3, 3]"), std::string::npos) << m;
  }
}
