export function App() {
  return <h1>gouache studio</h1>;
}
