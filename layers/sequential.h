// Sequential container (torch.nn.Sequential): children named "0", "1", ... in order, forward
// chains them. Nested Sequentials give PyTorch's names such as "layer1.0.conv1.weight".
#pragma once
#include <initializer_list>
#include <memory>
#include <vector>

#include "layers/module.h"

namespace moeseg {

class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  explicit Sequential(const std::vector<std::shared_ptr<Module>>& modules);
  // Appends as child str(size()); returns *this for chaining.
  Sequential& push_back(std::shared_ptr<Module> m);
  Tensor forward(const Tensor& x) override;

  size_t size() const { return children().size(); }
  std::shared_ptr<Module> operator[](size_t i) const;

 protected:
  // Any child may be replaced: forward runs whatever is in the child list.
  bool accept_replacement(const std::string&, const std::shared_ptr<Module>&) override { return true; }
};

// make_sequential(a, b, c): a shared Sequential of the given modules (make_shared cannot take a
// braced list).
template <typename... M>
std::shared_ptr<Sequential> make_sequential(std::shared_ptr<M>... modules) {
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{std::move(modules)...});
}

}  // namespace moeseg
